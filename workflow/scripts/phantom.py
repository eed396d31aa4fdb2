from pathlib import Path

from cinefm.log import setup_logging
from cinefm.phantom import generate_cohort

setup_logging(snakemake.log[0])
opts = dict(snakemake.params.options)
generate_cohort(
    Path(snakemake.output.reports).parent,
    patients=opts.pop("patients"),
    seed=opts.pop("seed"),
    jobs=snakemake.threads,
    **opts,
)
