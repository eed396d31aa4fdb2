# Echocardiography (EchoNet-Dynamic, or its synthetic stand-in): one fine-tuning job per experiment
# file of external.echonet.finetune.experiments (one per encoder, EchoNet's recipe), trained on the
# release's TRAIN/VAL split (results/external/echonet/ from the echonet rule in external.smk), then
# the EF statistics of the comparison (cinefm.stats.echo) that the report shows.
# Code: src/cinefm/train/recipe.py, src/cinefm/data/echo.py, src/cinefm/stats/echo.py.
# Experiments: common.smk echo_experiments().

if echo_experiments():

    # The MRI rule with the cohort's inputs: its release split replaces splits.csv, no pre-training.
    use rule finetune as echonet_finetune with:
        input:
            experiment=f"{echonet_finetune()['experiments']}/{{experiment}}.yaml",
            studies=f"{R}/external/echonet/studies.csv",
            labels=f"{R}/external/echonet/labels.csv",
        wildcard_constraints:
            experiment="|".join(echo_experiments()),

    rule echonet_stats:
        input:
            predictions=expand(f"{finetune_dir()}/{{name}}/predictions.csv", name=sorted(echo_experiments())),
        output:
            regression=report(f"{R}/stats/echonet/regression.csv", category="Echocardiography"),
            auroc=report(f"{R}/stats/echonet/auroc.csv", category="Echocardiography"),
            comparison=report(f"{R}/stats/echonet/comparison.csv", category="Echocardiography"),
            thresholds=report(f"{R}/stats/echonet/thresholds.csv", category="Echocardiography"),
        params:
            config={"stats": config["stats"], "labels": config["labels"]},
        log:
            "logs/stats/echonet.log",
        benchmark:
            "logs/benchmarks/stats/echonet.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            env("stats")
        script:
            "../scripts/echonet_stats.py"
