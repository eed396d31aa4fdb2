from cinefm.embed.retrieval import write_retrieval
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
write_retrieval(snakemake.input.embeddings, snakemake.output.table, snakemake.params.ks,
                permutations=snakemake.params.permutations, seed=snakemake.params.seed)
