# Patient-level splits (cinefm.splits): keyed hash of (patient id, seed) -> pretrain/downstream
# and train/val/test; external cohorts test-only; seeded training-fraction subsets.
# Inputs: the ingestion manifest (one row per study: patient_id, study_id, h5_relpath, status,
# views, ...) and labels.csv (study_id, patient_id, ...: cross-checked, not required per study).

SPLITS = config["splits"]
EXTERNAL_COHORTS = splits_external_cohorts()  # splits.external + the external test cohorts (common.smk)


rule splits:
    input:
        studies=f"{R}/ingest/studies.csv",
        labels=f"{R}/labels/labels.csv",
        external=[external_cohort_tables(name)["studies"] for name in EXTERNAL_COHORTS],
    output:
        splits=f"{R}/splits/splits.csv",
        fractions=f"{R}/splits/train_fractions.csv",
    params:
        cohort=COHORT["name"],
        splits=SPLITS,
        external=EXTERNAL_COHORTS,
    log:
        "logs/splits/splits.log",
    benchmark:
        "logs/benchmarks/splits/splits.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        env("base")  # cinefm's base only (envs/base.yaml)
    script:
        "../scripts/splits.py"

