# Synthetic multi-vendor cine CMR cohort (only when config cohort.kind is phantom).


rule phantom:
    output:
        dicom=directory(f"{PHANTOM_DIR}/dicom"),
        reports=f"{PHANTOM_DIR}/reports.csv",
        human_labels=f"{PHANTOM_DIR}/human_labels.csv",
        truth=f"{PHANTOM_DIR}/truth.csv",
        faults=f"{PHANTOM_DIR}/faults.csv",
    params:
        options=config["phantom"],
    log:
        "logs/phantom.log",
    benchmark:
        "logs/benchmarks/phantom/phantom.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        env("phantom")
    script:
        "../scripts/phantom.py"

