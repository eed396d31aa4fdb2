from cinefm.log import setup_logging
from cinefm.train.pretrain import run_pretraining
from cinefm.train.runs import rank_log_file

setup_logging(rank_log_file(snakemake.log[0]))
run_pretraining(
    snakemake.params.config,
    splits_csv=snakemake.input.splits,
    studies_csv=snakemake.input.studies,
    reports=snakemake.input.reports,
    tokenizer=snakemake.input.tokenizer,
    out_dir=snakemake.params.out_dir,
    requested_gpus=snakemake.resources.get("gpu"),
    threads=snakemake.threads,
)
