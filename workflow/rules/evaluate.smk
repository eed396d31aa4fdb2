# External tests: every trained model on every enabled external cohort's test units (ACDC, Kaggle, and each
# second DICOM site of sites.smk as cohort site_<name>), without
# retraining (cinefm.external.evaluate), then the external validation tables and figures
# (cinefm.stats.external). One job per (cohort, run): the count grows with experiments and cohorts,
# never with studies. Cohorts and runs come from common.smk (external_test_cohorts(), external_test_runs()).


if external_test_outputs():

    rule external_test:
        input:
            ckpt=f"{finetune_dir()}/{{experiment}}/best.ckpt",
            splits=f"{R}/splits/splits.csv",
            studies=lambda w: external_cohort_tables(w.cohort)["studies"],
            labels=lambda w: external_cohort_tables(w.cohort)["labels"],
        output:
            predictions=f"{R}/external_test/{{cohort}}/{{experiment}}/predictions.csv",
        wildcard_constraints:
            cohort="|".join(external_test_cohorts()),
        log:
            "logs/external_test/{cohort}/{experiment}.log",
        benchmark:
            "logs/benchmarks/external_test/{cohort}/{experiment}.tsv"
        threads: max(config["finetune"]["threads"], config["finetune"]["num_workers"])
        resources:
            mem_mb=16000,
            runtime=240,
            gpu=1,
        conda:
            env("train")
        script:
            "../scripts/external_test.py"

    rule external_stats:
        input:
            predictions=external_test_outputs(),
        output:
            table=report(f"{R}/stats/external.csv", category="External validation", subcategory="Tables",
                         caption="../report/external.rst"),
            delong=report(f"{R}/stats/external_delong.csv", category="External validation", subcategory="Tables",
                          caption="../report/external.rst"),
            # <cohort>/roc_<task>_<mode>_<fraction>.png, <cohort>/bland_altman_<experiment>.png
            figures=report(
                directory(f"{R}/stats/external_figures"),
                patterns=["{cohort}/{name}.png"],
                category="External validation",
                subcategory="{cohort}",
                labels={"cohort": "{cohort}", "figure": "{name}"},
                caption="../report/external.rst",
            ),
        params:
            config={"stats": config["stats"], "labels": config["labels"]},
        log:
            "logs/stats/external.log",
        benchmark:
            "logs/benchmarks/stats/external.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            env("stats")
        script:
            "../scripts/external_stats.py"
