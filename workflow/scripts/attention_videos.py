from pathlib import Path

from cinefm.log import setup_logging
from cinefm.viz.videos import render_attention_videos

setup_logging(snakemake.log[0])
render_attention_videos(snakemake.input.ckpt, snakemake.input.splits, snakemake.input.studies,
                        Path(snakemake.output.table).parent, snakemake.params.config,
                        experiment=snakemake.wildcards.experiment)
