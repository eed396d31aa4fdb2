# Attention heat-map videos: for each experiment of config attention.experiments, the class-token
# self-attention of its fine-tuned MViT trunk on chosen test studies, overlaid on the clips ->
# results/attention/{experiment}/ ({study}_{view}.mp4/.gif/.png, videos.csv). Code: src/cinefm/viz.
# Needs from common.smk: attention_experiments(); from finetune.smk: FINETUNE_DIR.
ATTENTION = config.get("attention") or {}
ATTENTION_EXPERIMENTS = attention_experiments()
# What the report embeds ([] when no attention videos are configured).
ATTENTION_REPORT_INPUTS = [f"{R}/attention/{name}/videos.csv" for name in ATTENTION_EXPERIMENTS]


if ATTENTION_EXPERIMENTS:

    rule attention_videos:
        input:
            ckpt=f"{FINETUNE_DIR}/{{experiment}}/best.ckpt",
            splits=f"{R}/splits/splits.csv",
            studies=f"{R}/ingest/studies.csv",
        output:
            videos=report(
                directory(f"{R}/attention/{{experiment}}/videos"),
                patterns=["{name}.mp4"],
                category="Attention heat maps",
                subcategory="{experiment}",
                labels={"experiment": "{experiment}", "video": "{name}"},
                caption="../report/attention_videos.rst",
            ),
            table=f"{R}/attention/{{experiment}}/videos.csv",
        params:
            config={"attention": ATTENTION, "data": config["data"]},
        wildcard_constraints:
            experiment="|".join(ATTENTION_EXPERIMENTS),
        log:
            "logs/attention/{experiment}.log",
        benchmark:
            "benchmarks/attention/{experiment}.tsv"
        threads: 2
        resources:
            mem_mb=16000,
            runtime=240,
            gpu=1,
        conda:
            env("train")
        script:
            "../scripts/attention_videos.py"

    FINAL_TARGETS.extend(ATTENTION_REPORT_INPUTS)
