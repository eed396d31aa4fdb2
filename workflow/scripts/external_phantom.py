from cinefm.log import setup_logging
from cinefm.phantom.releases import GENERATORS

setup_logging(snakemake.log[0])
GENERATORS[snakemake.params.cohort](snakemake.params.out, **snakemake.params.options)
