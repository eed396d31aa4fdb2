# Fine-tuning: one job per experiment file (config/experiments/<name>.yaml; task, init, mode,
# fraction, seed) -> best.ckpt (selected on validation), predictions.csv (val + test studies:
# target, score, attention per view), metrics.csv. Code: src/cinefm/train/finetune.py.
# Experiments are read in common.smk (finetune_experiments(), finetune_pretrain_ckpt()).

from cinefm.cluster import training_resources

FINETUNE_DIR = f"{R}/finetune"
# Everything the training job reads from the config; finetune.select/experiments only pick jobs.
FINETUNE_CONFIG = {
    **{k: config[k] for k in ("labels", "splits", "data", "models")},
    "finetune": {k: v for k, v in config["finetune"].items() if k not in ("select", "experiments")},
}


wildcard_constraints:
    experiment="|".join(FINETUNE_EXPERIMENTS) or "$^",


rule finetune:
    input:
        unpack(finetune_pretrain_ckpt),
        experiment=f"{config['finetune']['experiments']}/{{experiment}}.yaml",
        splits=f"{R}/splits/splits.csv",
        labels=f"{R}/labels/labels.csv",
        studies=f"{R}/ingest/studies.csv",
    output:
        ckpt=f"{FINETUNE_DIR}/{{experiment}}/best.ckpt",
        predictions=f"{FINETUNE_DIR}/{{experiment}}/predictions.csv",
        metrics=f"{FINETUNE_DIR}/{{experiment}}/metrics.csv",
    params:
        config=FINETUNE_CONFIG,
    log:
        "logs/finetune/{experiment}.log",
    benchmark:
        "benchmarks/finetune/{experiment}.tsv"
    threads: max(2, config["finetune"]["num_workers"])
    resources:
        mem_mb=16000,
        runtime=2880,
        **training_resources(config["finetune"], "finetune", threads=max(2, config["finetune"]["num_workers"])),
    conda:
        env("train")
    script:
        "../scripts/finetune.py"


FINAL_TARGETS.extend(
    f"{FINETUNE_DIR}/{name}/{out}"
    for name in finetune_experiments()
    for out in ("best.ckpt", "predictions.csv", "metrics.csv")
)
