from cinefm.log import setup_logging
from cinefm.train.finetune import run_finetune

setup_logging(snakemake.log[0])
run_finetune(
    snakemake.input.experiment,
    snakemake.params.config,
    splits_csv=None,  # cohort echonet: the release's split column of studies.csv
    studies_csv=snakemake.input.studies,
    labels_csv=snakemake.input.labels,
    pretrain_ckpt=None,
    out_ckpt=snakemake.output.ckpt,
    out_predictions=snakemake.output.predictions,
    out_metrics=snakemake.output.metrics,
    gpus=snakemake.resources.get("gpu"),
    threads=snakemake.threads,
)
