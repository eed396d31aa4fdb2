from pathlib import Path

from cinefm.log import setup_logging
from cinefm.stats.echo import write_echo_stats

setup_logging(snakemake.log[0])
write_echo_stats(snakemake.input.predictions, Path(snakemake.output.regression).parent, snakemake.params.config)
