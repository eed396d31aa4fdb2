from cinefm.config import write_run_config
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
write_run_config(snakemake.params.config, snakemake.output[0])
