from cinefm.log import setup_logging
from cinefm.splits import SplitFractions, make_splits

setup_logging(snakemake.log[0])
cfg = snakemake.params.splits
make_splits(
    snakemake.input.studies,
    snakemake.input.labels,
    snakemake.output.splits,
    snakemake.output.fractions,
    cohort=snakemake.params.cohort,
    seed=cfg["seed"],
    fractions=SplitFractions.from_config(cfg),
    train_fractions=cfg["train_fractions"],
    fraction_seed=cfg["fraction_seed"],
    external=dict(zip(snakemake.params.external, snakemake.input.external, strict=True)),
)
