from cinefm.log import setup_logging
from cinefm.stats.external import write_external_stats

setup_logging(snakemake.log[0])
write_external_stats(snakemake.input.predictions, snakemake.output.table, snakemake.output.delong,
                     snakemake.output.figures, snakemake.params.config)
