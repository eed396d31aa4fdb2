# Attention heat-map videos: for each experiment of config attention.experiments, the class-token
# self-attention of its fine-tuned MViT trunk on chosen test studies, overlaid on the clips ->
# results/attention/{experiment}/ ({study}_{view}.mp4/.gif/.png, videos.csv). Code: src/cinefm/viz.
# The experiments come from common.smk (attention_experiments(), attention_report_inputs()).


if attention_experiments():

    rule attention_videos:
        input:
            unpack(attention_inputs),  # common.smk: the checkpoint, and the splits/manifest it was tested on
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
            config={"attention": config["attention"], "data": config["data"]},
        wildcard_constraints:
            experiment="|".join(attention_experiments()),
        log:
            "logs/attention/{experiment}.log",
        benchmark:
            "logs/benchmarks/attention/{experiment}.tsv"
        threads: 2
        resources:
            mem_mb=16000,
            runtime=240,
            gpu=1,
        conda:
            env("train")
        script:
            "../scripts/attention_videos.py"

