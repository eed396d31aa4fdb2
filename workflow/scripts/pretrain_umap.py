from cinefm.embed.structure import write_structure
from cinefm.embed.umap_plot import write_umap
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
write_umap(snakemake.input.embeddings, snakemake.input.labels, snakemake.output.figure,
           snakemake.params.diseases, n_neighbors=snakemake.params.n_neighbors,
           min_dist=snakemake.params.min_dist, seed=snakemake.params.seed)
write_structure(snakemake.input.embeddings, snakemake.input.labels, snakemake.output.structure,
                [*snakemake.params.diseases, "heart_failure"], k=snakemake.params.structure_k,
                permutations=snakemake.params.structure_permutations, seed=snakemake.params.seed)
