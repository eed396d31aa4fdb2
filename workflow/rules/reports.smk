# Reports: PHI-scrubbed sentences + tokens (indexed JSON), disease labels, agreement
# with human annotators. Code: src/cinefm/text (reports), src/cinefm/labels.


rule reports:
    input:
        reports=reports_csv(),
    output:
        json=f"{R}/text/reports.json",
        index=f"{R}/text/reports.json.idx",
        table=f"{R}/text/reports.csv",
        rejected=f"{R}/text/rejected.csv",
        tokenizer=directory(f"{R}/text/tokenizer"),
        pipeline=f"{R}/text/pipeline.json",  # which sentence splitter and tokenizer ran
    params:
        text=config["text"],
        key_file=config["privacy"]["key_file"],
        phantom=IS_PHANTOM,
    log:
        "logs/reports.log",
    benchmark:
        "logs/benchmarks/reports/reports.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        env("text")
    script:
        "../scripts/reports.py"


rule labels:
    input:
        reports=f"{R}/text/reports.csv",
        vocabulary=config["labels"]["vocabulary"],
    output:
        labels=f"{R}/labels/labels.csv",
    params:
        labels=config["labels"],
        cache_dir=config["labels"]["llm"]["cache_dir"] or f"{R}/labels/llm_cache",
    log:
        "logs/labels.log",
    benchmark:
        "logs/benchmarks/labels/labels.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=600,
    conda:
        env("text")
    script:
        "../scripts/labels.py"


# The hf backend runs a local causal LM: the same rule, placed on a GPU.
if config["labels"]["backend"] == "hf":

    use rule labels as labels_hf with:
        resources:
            mem_mb=64000,
            runtime=600,
            gpu=1,

    ruleorder: labels_hf > labels


rule agreement:
    input:
        labels=f"{R}/labels/labels.csv",
        human=human_labels_csv(),
    output:
        table=f"{R}/labels/agreement.csv",
        figure=report(f"{R}/labels/agreement.png", category="Labels"),
    params:
        diseases=config["labels"]["diseases"],
        key_file=config["privacy"]["key_file"],
        phantom=IS_PHANTOM,
        bootstrap=config["stats"]["bootstrap"],
        seed=config["stats"]["bootstrap_seed"],
        level=config["stats"]["ci_level"],
    log:
        "logs/agreement.log",
    benchmark:
        "logs/benchmarks/agreement/agreement.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        env("text")
    script:
        "../scripts/agreement.py"

