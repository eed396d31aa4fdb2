# Echocardiography (EchoNet-Dynamic, or its synthetic stand-in): one fine-tuning job per experiment
# file of external.echonet.finetune.experiments (one per encoder, EchoNet's recipe), trained on the
# release's TRAIN/VAL split (results/external/echonet/ from the echonet rule in external.smk), then
# the EF statistics of the comparison (cinefm.stats.echo) that the report shows.
# Code: src/cinefm/train/recipes.py, src/cinefm/data/echo.py, src/cinefm/stats/echo.py.

ECHO_FT = ECHONET.get("finetune") or {}
ECHO_EXPERIMENTS = {}

if ECHONET_ROOT and ECHO_FT:
    ECHO_EXPERIMENTS = {
        p.stem: load_experiment(p, config["labels"]["diseases"])
        for p in experiment_paths(ECHO_FT["experiments"], ECHO_FT.get("select"))
    }
    for _name, _exp in ECHO_EXPERIMENTS.items():
        if _exp.cohort != "echonet":
            raise ValueError(f"{_exp.path}: external.echonet.finetune.experiments holds only cohort: echonet "
                             f"experiments (this one says {_exp.cohort!r})")
        if _name in FINETUNE_EXPERIMENTS:
            raise ValueError(f"{_exp.path}: name {_name!r} is also an MRI experiment; both would write "
                             f"{R}/finetune/{_name}/ — rename one")

if ECHO_EXPERIMENTS:
    # Everything the training job reads from the config (as the MRI finetune rule) + the echo section.
    ECHO_FINETUNE_CONFIG = {
        **FINETUNE_CONFIG,
        "external": {"echonet": {"finetune": {k: ECHO_FT[k] for k in ("weights", "overrides") if k in ECHO_FT}}},
    }

    rule echonet_finetune:
        input:
            experiment=f"{ECHO_FT['experiments']}/{{echo_experiment}}.yaml",
            studies=f"{R}/external/echonet/studies.csv",
            labels=f"{R}/external/echonet/labels.csv",
        output:
            ckpt=f"{FINETUNE_DIR}/{{echo_experiment}}/best.ckpt",
            predictions=f"{FINETUNE_DIR}/{{echo_experiment}}/predictions.csv",
            metrics=f"{FINETUNE_DIR}/{{echo_experiment}}/metrics.csv",
        params:
            config=ECHO_FINETUNE_CONFIG,
        wildcard_constraints:
            echo_experiment="|".join(ECHO_EXPERIMENTS),
        log:
            "logs/finetune/{echo_experiment}.log",
        benchmark:
            "benchmarks/finetune/{echo_experiment}.tsv"
        threads: max(2, config["finetune"]["num_workers"])
        resources:
            mem_mb=16000,
            runtime=2880,
            gpu=1,
        conda:
            env("train")
        script:
            "../scripts/echonet_finetune.py"

    rule echonet_stats:
        input:
            predictions=expand(f"{FINETUNE_DIR}/{{name}}/predictions.csv", name=sorted(ECHO_EXPERIMENTS)),
        output:
            regression=report(f"{R}/stats/echonet/regression.csv", category="Echocardiography"),
            auroc=report(f"{R}/stats/echonet/auroc.csv", category="Echocardiography"),
            comparison=report(f"{R}/stats/echonet/comparison.csv", category="Echocardiography"),
        params:
            config={"stats": config["stats"], "labels": config["labels"]},
        log:
            "logs/stats/echonet.log",
        benchmark:
            "benchmarks/stats/echonet.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            env("stats")
        script:
            "../scripts/echonet_stats.py"

    FINAL_TARGETS.extend(
        f"{FINETUNE_DIR}/{name}/{out}"
        for name in sorted(ECHO_EXPERIMENTS)
        for out in ("best.ckpt", "predictions.csv", "metrics.csv")
    )
    FINAL_TARGETS.append(f"{R}/stats/echonet/comparison.csv")


# The echo statistics the report shows ([] when EchoNet is not configured).
ECHONET_REPORT_INPUTS = (
    [f"{R}/stats/echonet/{n}.csv" for n in ("regression", "auroc", "comparison")] if ECHO_EXPERIMENTS else []
)
