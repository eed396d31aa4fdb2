from cinefm.labels.table import label_reports
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
label_reports(
    snakemake.input.reports,
    snakemake.output.labels,
    dict(snakemake.params.labels, vocabulary=snakemake.input.vocabulary),
    cache_dir=snakemake.params.cache_dir,
)
