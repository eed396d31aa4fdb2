from pathlib import Path

import pandas as pd

from cinefm.atomic import write_csv
from cinefm.log import setup_logging
from cinefm.stats.experiments import CohortTables, write_stats
from cinefm.stats.subgroups import COLUMNS as SUBGROUP_COLUMNS

setup_logging(snakemake.log[0])
subgroups = snakemake.params.lvef_subgroups  # False: LVEF trained on UK Biobank, no disease labels of its own
write_stats(snakemake.input.predictions, Path(snakemake.output.auroc).parent, snakemake.params.config,
            figures_dir=snakemake.output.figures,
            cohort_tables=CohortTables(Path(snakemake.input.labels), Path(snakemake.input.splits),
                                       Path(snakemake.input.fractions)) if subgroups else None)
if not subgroups:
    write_csv(pd.DataFrame(columns=SUBGROUP_COLUMNS), snakemake.output.subgroups)
