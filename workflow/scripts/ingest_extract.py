from cinefm.dicom.extract import extract_shard
from cinefm.dicom.views import load_view_rules
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
extract_shard(
    snakemake.input.files,
    snakemake.params.root,
    snakemake.params.h5_root,
    snakemake.output.manifest,
    shard=int(snakemake.wildcards.shard),
    shards=snakemake.params.shards,
    frame_size=snakemake.params.frame_size,
    percentiles=tuple(snakemake.params.percentiles),
    compression=snakemake.params.compression,
    tol=load_view_rules(snakemake.input.views).geometry.slice_tolerance_mm,
)
