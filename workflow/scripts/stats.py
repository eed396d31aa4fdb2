from pathlib import Path

from cinefm.log import setup_logging
from cinefm.stats.experiments import CohortTables, write_stats

setup_logging(snakemake.log[0])
write_stats(snakemake.input.predictions, Path(snakemake.output.auroc).parent, snakemake.params.config,
            figures_dir=snakemake.output.figures,
            cohort_tables=CohortTables(Path(snakemake.input.labels), Path(snakemake.input.splits),
                                       Path(snakemake.input.fractions)) if snakemake.params.lvef_subgroups else None)
