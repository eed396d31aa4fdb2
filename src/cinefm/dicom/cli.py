"""``cinefm ingest``: a DICOM archive -> files.parquet, flow.csv/png and one HDF5 per study."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``ingest`` sub-command."""
    p = subparsers.add_parser(
        "ingest",
        help="scan a DICOM archive, quarantine bad files, pick cine views, write one HDF5 per study",
        description="Writes OUT/ingest/files.parquet (one row per input file with a status and reason), "
        "OUT/ingest/flow.csv + flow.png (exclusion counts) and OUT/h5/{patient}/{study}.h5, as the "
        "Snakemake rules do. Real data needs a pseudonymization key ($CINEFM_PSEUDONYM_KEY or "
        "--key-file); only --phantom data may use the public demo key.",
    )
    p.add_argument("--dicom-root", required=True, help="root folder of the DICOM export")
    p.add_argument("--out", required=True, help="output folder (plays the role of results/)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for scan and extract (default 1)")
    p.add_argument("--config", default=None, help="config YAML for the ingest section (default config/config.yaml)")
    p.add_argument("--key-file", default=None, help="file holding the pseudonymization key (else config privacy.key_file)")
    p.add_argument("--phantom", action="store_true", help="synthetic cohort: allow the public demo key")
    p.add_argument("--id-map", default=None,
                   help="also write the real-id -> pseudonym map here (0600; keep it outside --out)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, load_config
    from cinefm.dicom.ingest import run_ingest

    cfg = load_config(args.config or DEFAULT_CONFIG)
    ingest_cfg = dict(cfg["ingest"])
    views = Path(ingest_cfg["views"])
    if not views.is_absolute() and not views.is_file():
        ingest_cfg["views"] = str(REPO_ROOT / views)
    flow = run_ingest(
        args.dicom_root, args.out, ingest_cfg=ingest_cfg, jobs=args.jobs, phantom=args.phantom,
        key_file=args.key_file or cfg["privacy"]["key_file"],
        id_map=args.id_map or ingest_cfg.get("id_map"),
    )
    kept = flow[flow["stage"].isin(["input", "kept"])]
    print(kept.pivot_table(index="level", columns="stage", values="count", sort=False).astype(int).to_string())
    return 0
