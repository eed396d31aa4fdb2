from cinefm.external.evaluate import evaluate_external
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
evaluate_external(snakemake.input.ckpt, snakemake.wildcards.cohort, splits_csv=snakemake.input.splits,
                  studies_csv=snakemake.input.studies, labels_csv=snakemake.input.labels,
                  out_predictions=snakemake.output.predictions, gpus=snakemake.resources.get("gpu"),
                  threads=snakemake.threads)
