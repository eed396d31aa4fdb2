# Fine-tuning: one job per experiment file (config/experiments/<name>.yaml; task, init, mode,
# fraction, seed) -> best.ckpt (selected on validation), predictions.csv (val + test studies:
# the experiment's identity, target, score, attention per view), metrics.csv, hparams.yaml (the
# resolved recipe). Code: src/cinefm/train/finetune.py, recipe in src/cinefm/train/recipe.py.
# Experiments are read in common.smk (mri_experiments(), finetune_pretrain_ckpt()); echo.smk
# reuses this rule for the external cohorts' experiments (use rule finetune as echonet_finetune).

from cinefm.cluster import training_resources


rule finetune:
    input:
        unpack(finetune_pretrain_ckpt),
        experiment=f"{config['finetune']['experiments']}/{{experiment}}.yaml",
        splits=f"{R}/splits/splits.csv",
        labels=f"{R}/labels/labels.csv",
        studies=f"{R}/ingest/studies.csv",
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
    threads: max(2, config["finetune"]["num_workers"])
    resources:
        mem_mb=16000,
        runtime=2880,
        **training_resources(config["finetune"], "finetune", threads=max(2, config["finetune"]["num_workers"])),
    conda:
        env("train")
    script:
        "../scripts/finetune.py"
