# Ingestion: DICOM archive -> files.parquet (a status per file) -> one HDF5 per study -> flow.
# Jobs: 1 list + `ingest.shards` scans + 1 merge + `ingest.shards` extracts + 1 flow,
# whatever the cohort size (HDF5 paths depend on the data, so each extract shard writes
# a manifest of its studies; downstream rules read ingest/studies.csv or the manifests).

INGEST = config["ingest"]
INGEST_DIR = ingest_dir()
INGEST_SHARDS = ingest_shards()
ID_MAP = INGEST["id_map"]
# The real-id map (PatientID/AccessionNumber -> pseudonym) lives outside results/ (0600).
_ID_PART = {"id_map_part": temp(f"{ID_MAP}.parts/shard_{{shard}}.csv")} if ID_MAP else {}
_ID_PARTS = {"id_map_parts": expand(f"{ID_MAP}.parts/shard_{{shard}}.csv", shard=INGEST_SHARDS)} if ID_MAP else {}
_ID_OUT = {"id_map": ID_MAP} if ID_MAP else {}


wildcard_constraints:
    shard=r"\d+",


rule ingest_list:
    input:
        dicom_root(),
    output:
        f"{INGEST_DIR}/filelist.parquet",
    log:
        "logs/ingest/list.log",
    benchmark:
        "logs/benchmarks/ingest_list/list.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        env("dicom")
    script:
        "../scripts/ingest_list.py"


rule ingest_scan:
    input:
        filelist=f"{INGEST_DIR}/filelist.parquet",
    output:
        table=f"{INGEST_DIR}/scan/shard_{{shard}}.parquet",
        **_ID_PART,
    params:
        root=dicom_root(),
        shards=INGEST["shards"],
        phantom=IS_PHANTOM,
        key_file=config["privacy"]["key_file"],
    log:
        "logs/ingest/scan_{shard}.log",
    benchmark:
        "logs/benchmarks/ingest_scan/shard_{shard}.tsv"
    threads: INGEST["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        env("dicom")
    script:
        "../scripts/ingest_scan.py"


rule ingest_merge:
    input:
        tables=expand(f"{INGEST_DIR}/scan/shard_{{shard}}.parquet", shard=INGEST_SHARDS),
        views=INGEST["views"],
        **_ID_PARTS,
    output:
        files=f"{INGEST_DIR}/files.parquet",
        quarantine=f"{INGEST_DIR}/quarantine.csv",
        **_ID_OUT,
    params:
        min_frames=INGEST["min_frames"],
    log:
        "logs/ingest/merge.log",
    benchmark:
        "logs/benchmarks/ingest_merge/merge.tsv"
    threads: INGEST["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        env("dicom")
    script:
        "../scripts/ingest_merge.py"


rule ingest_extract:
    input:
        files=f"{INGEST_DIR}/files.parquet",
        views=INGEST["views"],
    output:
        manifest=f"{INGEST_DIR}/extract/shard_{{shard}}.csv",
    params:
        root=dicom_root(),
        h5_root=f"{R}/h5",
        shards=INGEST["shards"],
        frame_size=INGEST["frame_size"],
        percentiles=INGEST["intensity_percentiles"],
        compression=INGEST["compression"],
    log:
        "logs/ingest/extract_{shard}.log",
    benchmark:
        "logs/benchmarks/ingest_extract/shard_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        env("dicom")
    script:
        "../scripts/ingest_extract.py"


rule ingest_flow:
    input:
        files=f"{INGEST_DIR}/files.parquet",
        manifests=expand(f"{INGEST_DIR}/extract/shard_{{shard}}.csv", shard=INGEST_SHARDS),
    output:
        flow_csv=report(f"{INGEST_DIR}/flow.csv", category="Ingestion"),
        flow_png=report(f"{INGEST_DIR}/flow.png", category="Ingestion", caption="../report/flow.rst"),
        studies=f"{INGEST_DIR}/studies.csv",
    log:
        "logs/ingest/flow.log",
    benchmark:
        "logs/benchmarks/ingest_flow/flow.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        env("dicom")
    script:
        "../scripts/ingest_flow.py"

