# Statistics (AUROC/DeLong/operating points/regression/Bland-Altman) and the static report.
# Code: src/cinefm/stats (write_stats), src/cinefm/report (build_report).
# Needs from common.smk: finetune_experiments() -> experiment names (<task>_<init>_<mode>_<fraction>).


rule stats:
    input:
        predictions=expand(f"{R}/finetune/{{experiment}}/predictions.csv", experiment=finetune_experiments()),
    output:
        auroc=report(f"{R}/stats/auroc.csv", category="Statistics"),
        delong=report(f"{R}/stats/delong.csv", category="Statistics"),
        thresholds=report(f"{R}/stats/thresholds.csv", category="Statistics"),
        regression=report(f"{R}/stats/regression.csv", category="Statistics"),
    params:
        config={"stats": config["stats"], "labels": config["labels"]},
    log:
        "logs/stats.log",
    benchmark:
        "benchmarks/stats/stats.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        env("stats")
    script:
        "../scripts/stats.py"


rule report:
    input:
        stats=rules.stats.output,
        flow=f"{R}/ingest/flow.csv",
        agreement=[f"{R}/labels/agreement.csv"] if human_labels_csv() else [],
        umap=f"{R}/pretrain/{config['pretrain']['run']}/umap.png",
        retrieval=f"{R}/pretrain/{config['pretrain']['run']}/retrieval.csv",
    output:
        html=report(f"{R}/report/index.html", category="Report"),
    params:
        results=lambda w, input: os.path.dirname(os.path.dirname(input.flow)),
        config={k: config[k] for k in ("cohort", "pretrain", "stats", "labels")},
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        env("stats")
    script:
        "../scripts/report.py"


FINAL_TARGETS.append(f"{R}/report/index.html")
