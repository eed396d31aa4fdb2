# The configuration a run resolved to (results/config.yaml): the provenance of its results.
rule run_config:
    """The configuration this run resolved to (command-line files merged, schema defaults filled)."""
    output:
        f"{R}/config.yaml",
    params:
        config=config,
    log:
        "logs/run_config.log",
    benchmark:
        "logs/benchmarks/run_config.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        env("base")  # cinefm's base only (envs/base.yaml)
    script:
        "../scripts/run_config.py"
