# Fine-tuning: one job per experiment file (config/experiments/<name>.yaml; task, init, mode,
# fraction, seed) -> best.ckpt (selected on validation), predictions.csv (val + test studies:
# the experiment's identity, target, score, attention per view), metrics.csv, hparams.yaml (the
# resolved recipe). Code: src/cinefm/train/finetune.py, recipe in src/cinefm/train/recipe.py.
# Experiments are read in common.smk (mri_experiments(), finetune_pretrain_ckpt()); echo.smk
# reuses this rule for the external cohorts' experiments (use rule finetune as echonet_finetune).
# finetune.disease.models: per_disease trains a task: diseases file (disease_<setup>.yaml) as one
# one-output model per disease, results/finetune/<disease>_<setup>/ (rule finetune_disease: the
# disease is a wildcard, no experiment file per disease); multi_label trains the file as one model
# (rule finetune; that target stays buildable under per_disease too). LVEF trains on the UK Biobank
# cohort (its 80:10:10 participant split, rule ukb_splits) with finetune.lvef.cohort: ukb.

from cinefm.cluster import training_resources


rule finetune:
    input:
        unpack(finetune_pretrain_ckpt),
        unpack(finetune_inputs),  # splits/studies/labels: the main cohort's, or UK Biobank's for LVEF (finetune.lvef.cohort)
        experiment=experiment_file,
    output:
        ckpt=f"{finetune_dir()}/{{experiment}}/best.ckpt",
        predictions=f"{finetune_dir()}/{{experiment}}/predictions.csv",
        metrics=f"{finetune_dir()}/{{experiment}}/metrics.csv",
        hparams=f"{finetune_dir()}/{{experiment}}/hparams.yaml",
    params:
        config=finetune_config(),
    wildcard_constraints:
        experiment="|".join(mri_experiments()) or "$^",
    log:
        "logs/finetune/{experiment}.log",
    benchmark:
        "logs/benchmarks/finetune/{experiment}.tsv"
    threads: max(config["finetune"]["threads"], config["finetune"]["num_workers"])
    resources:
        mem_mb=16000,
        runtime=2880,
        **training_resources(config["finetune"], "finetune", threads=max(config["finetune"]["threads"], config["finetune"]["num_workers"])),
    conda:
        env("train")
    script:
        "../scripts/finetune.py"


use rule finetune as finetune_disease with:
    output:
        ckpt=f"{finetune_dir()}/{{disease}}_{{setup}}/best.ckpt",
        predictions=f"{finetune_dir()}/{{disease}}_{{setup}}/predictions.csv",
        metrics=f"{finetune_dir()}/{{disease}}_{{setup}}/metrics.csv",
        hparams=f"{finetune_dir()}/{{disease}}_{{setup}}/hparams.yaml",
    params:
        config=finetune_config(),
        disease=lambda w: w.disease,
    wildcard_constraints:
        disease="|".join(config["labels"]["diseases"]),
        setup="|".join(disease_setups()) or "$^",
    log:
        "logs/finetune/{disease}_{setup}.log",
    benchmark:
        "logs/benchmarks/finetune/{disease}_{setup}.tsv"


if lvef_on_ukb():

    # The UK Biobank cohort's own participant-level split (keyed hash of the participant, splits.seed):
    # stage downstream, finetune.lvef.ukb_split shares; nothing of it enters the main cohort's splits.
    rule ukb_splits:
        input:
            studies=f"{R}/external/ukb/studies.csv",
            labels=f"{R}/external/ukb/labels.csv",
        output:
            splits=f"{R}/splits/ukb.csv",
            fractions=f"{R}/splits/ukb_train_fractions.csv",
        params:
            seed=config["splits"]["seed"],
            shares=config["finetune"]["lvef"]["ukb_split"],
            train_fractions=config["splits"]["train_fractions"],
            fraction_seed=config["splits"]["fraction_seed"],
        log:
            "logs/splits/ukb.log",
        benchmark:
            "logs/benchmarks/splits/ukb.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            env("base")  # cinefm's base only (envs/base.yaml)
        script:
            "../scripts/ukb_splits.py"
