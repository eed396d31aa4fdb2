from cinefm.labels.agreement import run_agreement
from cinefm.log import setup_logging
from cinefm.privacy import load_key

setup_logging(snakemake.log[0])
run_agreement(
    snakemake.input.labels,
    snakemake.input.human,
    snakemake.output.table,
    snakemake.output.figure,
    snakemake.params.diseases,
    key=load_key(snakemake.params.key_file, phantom=snakemake.params.phantom),
    n_boot=snakemake.params.bootstrap,
    seed=snakemake.params.seed,
    level=snakemake.params.level,
)
