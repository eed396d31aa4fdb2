"""``cinefm echonet``: an EchoNet-Dynamic release as distributed -> files.csv, h5/, studies.csv, labels.csv.

``cinefm echonet-phantom``: write a synthetic release in that format (:mod:`cinefm.phantom.echo`).
``cinefm ukb`` / ``acdc`` / ``kaggle-dsb``: UK Biobank, ACDC and Data Science Bowl releases as their
owners distribute them (:mod:`cinefm.external.ukb`, ``.acdc``, ``.kaggle``), with ingestion's clip
preprocessing (config ``ingest``); ``cinefm phantom-ukb|phantom-acdc|phantom-kaggle`` write synthetic
releases in those formats (:mod:`cinefm.phantom.releases`).
``cinefm evaluate-external``: a fine-tuned run on an external cohort folder, the external_test rule's code
(:func:`cinefm.external.evaluate.evaluate_folder`).
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
    _register_cohorts(subparsers)
    _register_evaluate(subparsers)


def _register_evaluate(subparsers) -> None:
    e = subparsers.add_parser(
        "evaluate-external",
        help="test a fine-tuned run on an external cohort folder (no retraining; the external_test rule's code)",
        description="Predicts the cohort's test units with the run's selected model (best.ckpt) exactly as the "
        "workflow's external_test rule does (cinefm.external.evaluate.evaluate_external) and writes OUT "
        "(predictions.csv: the internal columns plus test_cohort). COHORT is an adapter's folder "
        "(results/external/<name>: studies.csv, labels.csv, h5/) or a DICOM site's (results/sites/<name>: "
        "ingest/studies.csv, labels/labels.csv, h5/). The test units are the cohort's rows of --splits (stage "
        "external); without --splits every study of the folder is one, and the leakage check against the run's "
        "training patients is skipped (said in the log).",
    )
    e.add_argument("--run", required=True, help="fine-tuning run folder (results/finetune/<run>) or its best.ckpt")
    e.add_argument("--cohort", required=True, help="cohort folder (results/external/<name> or results/sites/<name>)")
    e.add_argument("--out", required=True, help="predictions CSV to write")
    e.add_argument("--name", default=None,
                   help="cohort name as in splits.csv (default: the folder's: acdc, kaggle, site_<name>, ...)")
    e.add_argument("--splits", default=None, help="the workflow's splits.csv (results/splits/splits.csv)")
    e.add_argument("--gpus", type=int, default=None, help="0 = CPU (default: a GPU when one is visible)")
    e.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    e.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from cinefm.external.evaluate import evaluate_folder

    pred = evaluate_folder(args.run, args.cohort, args.out, name=args.name, splits_csv=args.splits, gpus=args.gpus,
                           threads=args.threads)
    print(f"{args.out}: {pred['study_id'].nunique()} test units, tasks {', '.join(sorted(pred['task'].unique()))}")
    return 0


COHORTS = {  # command -> (config key, what --root holds)
    "ukb": ("ukb", "folder of UK Biobank bulk zips {eid}_20209_2_0.zip (SAX) and {eid}_20208_2_0.zip (LAX)"),
    "acdc": ("acdc", "unpacked ACDC release holding training/ and testing/ patientNNN/ folders"),
    "kaggle-dsb": ("kaggle", "unpacked second-annual-data-science-bowl download: train/ validate/ test/ and CSVs"),
}
PHANTOM_UNITS = {"ukb": "participants", "acdc": "patients", "kaggle": "studies"}
NAMES = {"ukb": "UK Biobank", "acdc": "ACDC", "kaggle-dsb": "Data Science Bowl"}


def _register_cohorts(subparsers) -> None:
    for command, (cohort, root_help) in COHORTS.items():
        p = subparsers.add_parser(
            command, help=f"convert the {NAMES[command]} release as distributed to per-study HDF5 (ingestion layout)",
            description="Writes OUT/files.csv (a status and reason per source unit), OUT/series.csv (the fate of "
            "every DICOM series), OUT/h5/{patient}/{study}.h5 (ingestion's layout and clip preprocessing, config "
            "ingest), OUT/studies.csv, OUT/labels.csv (lvef, edv_ml, esv_ml, disease keys, split) and OUT/flow.csv. "
            "Needs the pseudonymization key ($CINEFM_PSEUDONYM_KEY or --key-file). Reruns rewrite nothing unchanged.")
        p.add_argument("--root", required=True, help=root_help)
        p.add_argument("--out", required=True, help=f"output folder (e.g. results/external/{cohort})")
        if cohort == "ukb":
            p.add_argument("--lvef", default=None, help="CSV with eid and lvef (%%) [edv_ml, esv_ml, instance], or the "
                           "showcase columns eid, 22420-2.0, 22421-2.0, 22422-2.0")
            p.add_argument("--tmp-dir", default=None, help="where zips are unpacked one study at a time "
                           "(default: the system temporary folder)")
        p.add_argument("--jobs", type=int, default=None, help=f"worker processes (default: config external.{cohort}.jobs)")
        p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
        p.add_argument("--key-file", default=None, help="file holding the pseudonymization key (else config privacy.key_file)")
        p.set_defaults(func=_run_cohort, cohort=cohort)
        q = subparsers.add_parser(
            f"phantom-{cohort}", help=f"write a synthetic {NAMES[command]} release (known truth, injected faults)",
            description=f"Writes a release in the exact format `cinefm {command}` reads, plus truth.csv; options "
            f"other than those given come from the config's external.{cohort}.phantom section.")
        q.add_argument("--out", required=True, help="output folder (the release root)")
        q.add_argument(f"--{PHANTOM_UNITS[cohort]}", dest="units", type=int, default=None, help="good units (default: config)")
        q.add_argument("--seed", type=int, default=None, help="random seed (default: config)")
        q.add_argument("--no-faults", action="store_true", help="no injected faults or quirks")
        q.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
        q.set_defaults(func=_run_cohort_phantom, cohort=cohort)


def preprocess_from_config(cfg: dict):
    """Ingestion's clip preprocessing (config ``ingest``) for the external adapters."""
    from cinefm.dicom.views import load_view_rules
    from cinefm.external.release import Preprocess

    ing = cfg.get("ingest", {})
    tol = load_view_rules(ing["views"]).geometry.slice_tolerance_mm if ing.get("views") else Preprocess.tol_mm
    return Preprocess(frame_size=int(ing.get("frame_size", 64)), tol_mm=float(tol),
                      percentiles=tuple(float(x) for x in ing.get("intensity_percentiles", (0.5, 99.5))),
                      compression=str(ing.get("compression", "none")), min_frames=int(ing.get("min_frames", 10)))


def phantom_options(cfg: dict, cohort: str) -> dict:
    """The generator's keyword arguments from ``external.<cohort>.phantom`` (without ``enabled``)."""
    opts = dict(((cfg.get("external") or {}).get(cohort) or {}).get("phantom") or {})
    opts.pop("enabled", None)
    return opts


def _run_cohort_phantom(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.phantom.releases import GENERATORS

    opts = phantom_options(load_config(args.config or DEFAULT_CONFIG), args.cohort)
    if args.units is not None:
        opts[PHANTOM_UNITS[args.cohort]] = args.units
    if args.seed is not None:
        opts["seed"] = args.seed
    if args.no_faults:
        opts["faults"] = False
    for name, path in GENERATORS[args.cohort](args.out, **opts).items():
        print(f"{name}\t{path}")
    return 0


def _run_cohort(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.external.release import run_cohort
    from cinefm.privacy import load_key

    cfg = load_config(args.config or DEFAULT_CONFIG)
    key = load_key(args.key_file or cfg.get("privacy", {}).get("key_file"), phantom=False)
    ccfg = (cfg.get("external") or {}).get(args.cohort) or {}
    extra = {"lvef": args.lvef or ccfg.get("lvef"), "tmp_root": args.tmp_dir or ccfg.get("tmp_dir")} \
        if args.cohort == "ukb" else {}
    files = run_cohort(args.cohort, args.root, args.out, key=key, pre=preprocess_from_config(cfg),
                       jobs=args.jobs or int(ccfg.get("jobs", 1)), **extra)
    print(files["status"].value_counts().to_string())
    return 0


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
