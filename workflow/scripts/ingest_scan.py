from cinefm.dicom.scan import scan_shard
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
scan_shard(
    snakemake.input.filelist,
    snakemake.params.root,
    snakemake.output.table,
    shard=int(snakemake.wildcards.shard),
    shards=snakemake.params.shards,
    phantom=snakemake.params.phantom,
    key_file=snakemake.params.key_file,
    jobs=snakemake.threads,
    id_map_out=snakemake.output.get("id_map_part"),
)
