import os

from cinefm.cluster import training_request
from cinefm.train.launch import launch

launch("finetune", dict(
    experiment_yaml=snakemake.input.experiment,
    config=snakemake.params.config,
    splits_csv=getattr(snakemake.input, "splits", None),  # external cohorts: their release split
    studies_csv=snakemake.input.studies,
    labels_csv=snakemake.input.labels,
    pretrain_ckpt=getattr(snakemake.input, "pretrain", None),
    out_ckpt=snakemake.output.ckpt,
    out_predictions=snakemake.output.predictions,
    out_metrics=snakemake.output.metrics,
    out_hparams=snakemake.output.hparams,
    threads=snakemake.threads,
    disease=snakemake.params.get("disease"),  # finetune_disease: one disease of a task: diseases file
), training_request(snakemake.params.config["finetune"], "finetune", snakemake.threads),
    spec_dir=os.path.join(os.path.dirname(snakemake.output.ckpt), "state"), log_file=snakemake.log[0], gpus=snakemake.resources.get("gpu"))
