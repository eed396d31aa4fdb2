from cinefm.log import setup_logging
from cinefm.phantom.echo import generate_echonet

setup_logging(snakemake.log[0])
generate_echonet(snakemake.params.out, **snakemake.params.options)
