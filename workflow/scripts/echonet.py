from cinefm.external.echonet import run_echonet
from cinefm.log import setup_logging
from cinefm.privacy import load_key

setup_logging(snakemake.log[0])
run_echonet(snakemake.params.root, snakemake.params.out,
            key=load_key(snakemake.params.key_file, phantom=snakemake.params.phantom),
            frame_size=snakemake.params.frame_size, jobs=snakemake.threads,
            keep_inconsistent=snakemake.params.keep_inconsistent, compression=snakemake.params.compression)
