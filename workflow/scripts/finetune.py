from cinefm.log import setup_logging
from cinefm.train.finetune import run_finetune

setup_logging(snakemake.log[0])
run_finetune(
    snakemake.input.experiment,
    snakemake.params.config,
    splits_csv=getattr(snakemake.input, "splits", None),  # external cohorts: their release split
    studies_csv=snakemake.input.studies,
    labels_csv=snakemake.input.labels,
    pretrain_ckpt=getattr(snakemake.input, "pretrain", None),
    out_ckpt=snakemake.output.ckpt,
    out_predictions=snakemake.output.predictions,
    out_metrics=snakemake.output.metrics,
    out_hparams=snakemake.output.hparams,
    gpus=snakemake.resources.get("gpu"),
    threads=snakemake.threads,
    disease=snakemake.params.get("disease"),  # finetune_disease: one disease of a task: diseases file
)
