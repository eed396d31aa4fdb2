# Statistics (AUROC/DeLong/operating points/regression/Bland-Altman) and the static report.
# Code: src/cinefm/stats (write_stats), src/cinefm/report (build_report).
# Needs from common.smk: finetune_runs() -> run names (<task>_<init>_<mode>_<fraction>; per-disease runs
# <disease>_<init>_<mode>_<fraction>), external_stats_outputs() (evaluate.smk).


rule stats:
    input:
        predictions=expand(f"{finetune_dir()}/{{experiment}}/predictions.csv", experiment=finetune_runs()),
        labels=f"{R}/labels/labels.csv",
        splits=f"{R}/splits/splits.csv",
        fractions=f"{R}/splits/train_fractions.csv",
    output:
        auroc=report(f"{R}/stats/auroc.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        delong=report(f"{R}/stats/delong.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        thresholds=report(f"{R}/stats/thresholds.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        regression=report(f"{R}/stats/regression.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        subgroups=report(f"{R}/stats/lvef_subgroups.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        view_attention=report(f"{R}/stats/view_attention.csv", category="Evaluation", subcategory="Tables", caption="../report/stats_tables.rst"),
        # roc_<task>_<mode>_<fraction>.png, bland_altman_<experiment>.png, lvef_subgroups.png,
        # view_attention.png: which exist depends on the data
        figures=report(
            directory(f"{R}/stats/figures"),
            patterns=["{name}.png"],
            category="Evaluation",
            subcategory=stats_figure_kind,
            labels={"figure": "{name}"},
            caption="../report/stats_figures.rst",
        ),
    params:
        config={"stats": config["stats"], "labels": config["labels"]},
        # LVEF errors by disease subgroup need the LVEF test studies in the main cohort's labels
        lvef_subgroups=config["finetune"]["lvef"].get("cohort", "reports") == "reports",
    log:
        "logs/stats.log",
    benchmark:
        "logs/benchmarks/stats/stats.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        env("stats")
    script:
        "../scripts/stats.py"


# The stats target: `snakemake all_stats` checks every fine-tuning output as well, so a deleted
# predictions.csv reruns that experiment and the stats, nothing else. A file target such as
# results/stats/delong.csv only checks the stats outputs themselves: Snakemake does not remake
# a missing intermediate file while the files built from it are present and up to date
# (snakemake/snakemake#1978; `rule all` checks every final output the same way).
rule all_stats:
    localrule: True
    input:
        rules.stats.input,
        rules.stats.output,


rule report:
    input:
        stats=rules.stats.output,
        flow=f"{R}/ingest/flow.csv",
        agreement=[f"{R}/labels/agreement.csv"] if human_labels_csv() else [],
        umap=f"{R}/pretrain/{config['pretrain']['run']}/umap.png",
        retrieval=f"{R}/pretrain/{config['pretrain']['run']}/retrieval.csv",
        structure=f"{R}/pretrain/{config['pretrain']['run']}/structure.csv",
        echo=echonet_report_inputs(),  # echo.smk: EchoNet EF comparison ([] when not configured)
        external=external_flows(),  # external.smk: flow.csv of each enabled UKB/ACDC/Kaggle adapter
        attention=attention_report_inputs(),  # attention.smk: heat-map videos ([] when not configured)
        external_stats=external_stats_outputs(),  # evaluate.smk: external validation ([] without external tests)
    output:
        html=report(f"{R}/report/index.html", category="Report", caption="../report/report_html.rst"),
    params:
        results=lambda w, input: os.path.dirname(os.path.dirname(input.flow)),
        config={**config, "echonet": bool(echonet_report_inputs())},  # all of it: the report lists departures from the method
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        env("stats")
    script:
        "../scripts/report.py"

