from cinefm.cluster import training_request
from cinefm.train.launch import launch

launch("pretrain", dict(
    config=snakemake.params.config,
    splits_csv=snakemake.input.splits,
    studies_csv=snakemake.input.studies,
    reports=snakemake.input.reports,
    tokenizer=snakemake.input.tokenizer,
    out_dir=snakemake.params.out_dir,
    threads=snakemake.threads,
), training_request(snakemake.params.config["pretrain"], "pretrain"), spec_dir=f"{snakemake.params.out_dir}/state",
    log_file=snakemake.log[0], gpus=snakemake.resources.get("gpu"))
