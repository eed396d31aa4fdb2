from cinefm.log import setup_logging
from cinefm.report.html import build_report

setup_logging(snakemake.log[0])
build_report(snakemake.params.results, snakemake.output.html, snakemake.params.config)
