"""``cinefm echonet``: an EchoNet-Dynamic release as distributed -> files.csv, h5/, studies.csv, labels.csv.

``cinefm echonet-phantom``: write a synthetic release in that format (:mod:`cinefm.phantom.echo`).
"""

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
    q = subparsers.add_parser(
        "echonet-phantom",
        help="write a synthetic EchoNet-Dynamic release (known EF, injected faults) for demos and tests",
        description="Writes OUT/FileList.csv, OUT/Videos/*.avi, OUT/VolumeTracings.csv and OUT/faults.csv in the "
        "layout of the public release; options other than --videos/--seed come from the config's "
        "external.echonet.phantom section. Convert it with `cinefm echonet --root OUT ...`.",
    )
    q.add_argument("--out", required=True, help="output folder (the release root)")
    q.add_argument("--videos", type=int, default=None, help="good videos (default: config)")
    q.add_argument("--seed", type=int, default=None, help="random seed (default: config)")
    q.add_argument("--no-faults", action="store_true", help="no corrupt/missing/inconsistent/unlisted videos")
    q.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    q.set_defaults(func=_run_phantom)


def _run_phantom(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.phantom.echo import generate_echonet

    cfg = load_config(args.config or DEFAULT_CONFIG)
    opts = {k: v for k, v in ((cfg.get("external") or {}).get("echonet") or {}).get("phantom", {}).items()
            if k != "enabled"}
    for key in ("videos", "seed"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.no_faults:
        opts["faults"] = False
    for name, path in generate_echonet(args.out, **opts).items():
        print(f"{name}\t{path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.external.echonet import run_echonet
    from cinefm.privacy import load_key

    cfg = load_config(args.config or DEFAULT_CONFIG)
    echo_cfg = cfg.get("external", {}).get("echonet", {})
    key = load_key(args.key_file or cfg["privacy"]["key_file"], phantom=False)
    files = run_echonet(
        args.root, args.out, key=key, jobs=args.jobs,
        frame_size=args.frame_size or int(echo_cfg.get("frame_size", 112)),
        keep_inconsistent=args.keep_inconsistent or bool(echo_cfg.get("keep_inconsistent", False)),
        compression=cfg["ingest"]["compression"],
    )
    print(files["status"].value_counts().to_string())
    return 0
