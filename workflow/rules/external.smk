# Public-dataset adapters (cinefm.external): a release as distributed -> results/external/{name}/
# files.csv (status per video), h5/{patient}/{study}.h5, studies.csv (for splits), labels.csv.
# A rule exists only when its config root is set (config external.<name>.root), or, for EchoNet,
# when its synthetic release is enabled (external.echonet.phantom.enabled; cinefm.phantom.echo).

EXTERNAL = config.get("external", {})
ECHONET = EXTERNAL.get("echonet") or {}
ECHONET_PHANTOM = (ECHONET.get("phantom") or {}) if not ECHONET.get("root") else {}
ECHONET_IS_PHANTOM = bool(ECHONET_PHANTOM.get("enabled"))
ECHONET_ROOT = ECHONET.get("root") or (f"{R}/external/echonet_phantom" if ECHONET_IS_PHANTOM else None)


if ECHONET_IS_PHANTOM:

    rule echonet_phantom:
        output:
            filelist=f"{ECHONET_ROOT}/FileList.csv",
            tracings=f"{ECHONET_ROOT}/VolumeTracings.csv",
            faults=f"{ECHONET_ROOT}/faults.csv",
        params:
            out=lambda w, output: os.path.dirname(output.filelist),
            options={k: v for k, v in ECHONET_PHANTOM.items() if k != "enabled"},
        log:
            "logs/external/echonet_phantom.log",
        benchmark:
            "benchmarks/external/echonet_phantom.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            env("external")
        script:
            "../scripts/echonet_phantom.py"


if ECHONET_ROOT:

    rule echonet:
        input:
            filelist=f"{ECHONET_ROOT}/FileList.csv",
        output:
            files=f"{R}/external/echonet/files.csv",
            studies=f"{R}/external/echonet/studies.csv",
            labels=f"{R}/external/echonet/labels.csv",
            flow=f"{R}/external/echonet/flow.csv",
            tracings=f"{R}/external/echonet/tracings_issues.csv",
        params:
            root=lambda w, input: os.path.dirname(input.filelist),
            phantom=ECHONET_IS_PHANTOM,
            out=lambda w, output: os.path.dirname(output.files),
            frame_size=ECHONET["frame_size"],
            keep_inconsistent=ECHONET["keep_inconsistent"],
            key_file=config["privacy"].get("key_file"),
        log:
            "logs/external/echonet.log",
        benchmark:
            "benchmarks/external/echonet.tsv"
        threads: ECHONET["jobs"]
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            env("external")
        script:
            "../scripts/echonet.py"

    FINAL_TARGETS.extend([f"{R}/external/echonet/files.csv", f"{R}/external/echonet/studies.csv"])


# UK Biobank, ACDC and the Kaggle Data Science Bowl as their owners distribute them
# (cinefm.external.{ukb,acdc,kaggle}): one rule per enabled cohort, on CPU. With root null the DAG
# first writes the cohort's synthetic release (cinefm.phantom.releases) and converts that.
EXTERNAL_TABLES = ("files", "series", "studies", "labels", "flow")
EXTERNAL_RELEASES = {}  # cohort -> (root, is_phantom)
for _cohort in ("ukb", "acdc", "kaggle"):
    _ccfg = EXTERNAL.get(_cohort) or {}
    if _ccfg.get("enabled"):
        EXTERNAL_RELEASES[_cohort] = (_ccfg.get("root") or f"{R}/external/{_cohort}_phantom", not _ccfg.get("root"))
EXTERNAL_FLOWS = [f"{R}/external/{c}/flow.csv" for c in EXTERNAL_RELEASES]


def external_release_input(cohort):
    """The adapter's input: the synthetic release's truth.csv, or the configured root (and --lvef CSV)."""
    root, phantom = EXTERNAL_RELEASES[cohort]
    if phantom:
        return {"release": f"{root}/truth.csv"}
    lvef = (EXTERNAL[cohort].get("lvef") if cohort == "ukb" else None)
    return {"release": root, **({"lvef": lvef} if lvef else {})}


for _cohort, (_root, _phantom) in EXTERNAL_RELEASES.items():
    if _phantom:

        rule:
            name:
                f"{_cohort}_phantom"
            output:
                truth=f"{_root}/truth.csv",
            params:
                cohort=_cohort,
                out=_root,
                options={k: v for k, v in EXTERNAL[_cohort]["phantom"].items()},
            log:
                f"logs/external/{_cohort}_phantom.log",
            benchmark:
                f"benchmarks/external/{_cohort}_phantom.tsv"
            threads: 1
            resources:
                mem_mb=2000,
                runtime=30,
            conda:
                env("external")
            script:
                "../scripts/external_phantom.py"

    rule:
        name:
            _cohort
        input:
            **external_release_input(_cohort),
        output:
            **{t: f"{R}/external/{_cohort}/{t}.csv" for t in EXTERNAL_TABLES},
        params:
            cohort=_cohort,
            root=_root,
            phantom=_phantom,
            lvef=(EXTERNAL[_cohort].get("lvef") or (f"{_root}/lvef.csv" if _phantom else None))
            if _cohort == "ukb" else None,
            tmp_dir=EXTERNAL[_cohort].get("tmp_dir"),
            out=f"{R}/external/{_cohort}",
            frame_size=config["ingest"]["frame_size"],
            percentiles=config["ingest"]["intensity_percentiles"],
            compression=config["ingest"]["compression"],
            min_frames=config["ingest"]["min_frames"],
            key_file=config["privacy"].get("key_file"),
        log:
            f"logs/external/{_cohort}.log",
        benchmark:
            f"benchmarks/external/{_cohort}.tsv"
        threads: EXTERNAL[_cohort]["jobs"]
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            env("external")
        script:
            "../scripts/external_cohort.py"

    FINAL_TARGETS.extend([f"{R}/external/{_cohort}/files.csv", f"{R}/external/{_cohort}/studies.csv"])
