from cinefm.log import setup_logging
from cinefm.splits import SplitFractions, make_splits

setup_logging(snakemake.log[0])
shares = snakemake.params.shares  # finetune.lvef.ukb_split: every participant downstream, none pre-trains
make_splits(
    snakemake.input.studies,
    snakemake.input.labels,
    snakemake.output.splits,
    snakemake.output.fractions,
    cohort="ukb",
    seed=snakemake.params.seed,
    fractions=SplitFractions(pretrain=0.0, pretrain_val=0.0, downstream_train=shares["train"],
                             downstream_val=shares["val"], downstream_test=shares["test"]),
    train_fractions=snakemake.params.train_fractions,
    fraction_seed=snakemake.params.fraction_seed,
)
