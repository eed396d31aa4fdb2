"""``cinefm echonet``: an EchoNet-Dynamic release as distributed -> files.csv, h5/, studies.csv, labels.csv."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``echonet`` sub-command."""
    p = subparsers.add_parser(
        "echonet",
        help="convert an EchoNet-Dynamic release (FileList.csv + Videos/*.avi) to per-study HDF5",
        description="Writes OUT/files.csv (a status per FileList row: ok, missing, unreadable, inconsistent, "
        "duplicate), OUT/h5/{patient}/{study}.h5 (view A4C), OUT/studies.csv (with the release's split), "
        "OUT/labels.csv (lvef = EF), OUT/flow.csv and OUT/tracings_issues.csv. Needs the pseudonymization "
        "key ($CINEFM_PSEUDONYM_KEY or --key-file), as for any real cohort.",
    )
    p.add_argument("--root", required=True, help="unpacked release folder holding FileList.csv and Videos/")
    p.add_argument("--out", required=True, help="output folder (e.g. results/external/echonet)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--frame-size", type=int, default=None,
                   help="stored frame size in pixels (default: config external.echonet.frame_size)")
    p.add_argument("--keep-inconsistent", action="store_true",
                   help="convert videos whose frame count/size differs from FileList (default: quarantine)")
    p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    p.add_argument("--key-file", default=None, help="file holding the pseudonymization key (else config privacy.key_file)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.external.echonet import run_echonet
    from cinefm.privacy import load_key

    cfg = load_config(args.config or DEFAULT_CONFIG)
    echo_cfg = cfg.get("external", {}).get("echonet", {})
    key = load_key(args.key_file or cfg.get("privacy", {}).get("key_file"), phantom=False)
    files = run_echonet(
        args.root, args.out, key=key, jobs=args.jobs,
        frame_size=args.frame_size or int(echo_cfg.get("frame_size", 112)),
        keep_inconsistent=args.keep_inconsistent or bool(echo_cfg.get("keep_inconsistent", False)),
    )
    print(files["status"].value_counts().to_string())
    return 0
