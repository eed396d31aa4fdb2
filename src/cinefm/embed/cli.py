"""``cinefm retrieval`` and ``cinefm umap``: evaluate the embeddings of a pre-training run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``retrieval`` and ``umap`` sub-commands."""
    p = sub.add_parser("retrieval", help="video->text and text->video recall@k against chance -> CSV",
                       description="Read a pre-training run's embeddings.h5 and write recall@k of "
                       "cross-modal retrieval (study and clip level, both directions) next to chance.")
    p.add_argument("--embeddings", required=True, help="embeddings.h5 of a pre-training run")
    p.add_argument("--out", required=True, help="CSV to write (the pipeline: retrieval.csv beside it)")
    p.add_argument("-k", type=int, nargs="+", default=[1, 5, 10], help="k values (default 1 5 10)")
    p.add_argument("--permutations", type=int, default=1000,
                   help="random report-to-video assignments for the p-value (default 1000; 0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    p.set_defaults(func=_retrieval)

    u = sub.add_parser("umap", help="UMAP of the validation embeddings coloured by disease -> PNG",
                       description="Project clip and report embeddings with UMAP and colour them by the "
                       "study's disease category from a labels table.")
    u.add_argument("--embeddings", required=True, help="embeddings.h5 of a pre-training run")
    u.add_argument("--labels", required=True, help="labels.csv (study_id + one column per disease)")
    u.add_argument("--out", required=True, help="PNG to write")
    u.add_argument("--config", default=None, help="config YAML for labels.diseases and the UMAP settings")
    u.set_defaults(func=_umap)


def _retrieval(args: argparse.Namespace) -> int:
    from cinefm.embed.retrieval import write_retrieval

    table = write_retrieval(args.embeddings, args.out, args.k, args.permutations, args.seed)
    print(table.to_string(index=False))
    return 0


def _umap(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.embed.umap_plot import write_umap

    config = load_config(args.config or DEFAULT_CONFIG)
    pre = config["pretrain"]
    write_umap(args.embeddings, args.labels, args.out, config["labels"]["diseases"],
               n_neighbors=pre["umap_neighbors"], min_dist=pre["umap_min_dist"], seed=pre["seed"])
    print(args.out)
    return 0
