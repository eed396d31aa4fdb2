# Public-dataset adapters (cinefm.external): a release as distributed -> results/external/{name}/
# files.csv (status per video), h5/{patient}/{study}.h5, studies.csv (for splits), labels.csv.
# EchoNet: a rule exists only when its config root is set (config external.echonet.root), or
# when its synthetic release is enabled (external.echonet.phantom.enabled; cinefm.phantom.echo).
# UKB, ACDC, Kaggle: a rule exists when external.<cohort>.enabled (see below).
# The release root and options come from common.smk (echonet_root(), echonet_phantom(), ...).


if echonet_is_phantom():

    rule echonet_phantom:
        output:
            filelist=f"{echonet_root()}/FileList.csv",
            tracings=f"{echonet_root()}/VolumeTracings.csv",
            faults=f"{echonet_root()}/faults.csv",
        params:
            out=lambda w, output: os.path.dirname(output.filelist),
            options={k: v for k, v in echonet_phantom().items() if k != "enabled"},
        log:
            "logs/external/echonet_phantom.log",
        benchmark:
            "logs/benchmarks/external/echonet_phantom.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            env("external")
        script:
            "../scripts/echonet_phantom.py"


if echonet_root():

    rule echonet:
        input:
            filelist=f"{echonet_root()}/FileList.csv",
        output:
            files=f"{R}/external/echonet/files.csv",
            studies=f"{R}/external/echonet/studies.csv",
            labels=f"{R}/external/echonet/labels.csv",
            flow=f"{R}/external/echonet/flow.csv",
            tracings=f"{R}/external/echonet/tracings_issues.csv",
        params:
            root=lambda w, input: os.path.dirname(input.filelist),
            phantom=echonet_is_phantom(),
            out=lambda w, output: os.path.dirname(output.files),
            frame_size=echonet_config()["frame_size"],
            keep_inconsistent=echonet_config()["keep_inconsistent"],
            compression=config["ingest"]["compression"],
            key_file=config["privacy"]["key_file"],
        log:
            "logs/external/echonet.log",
        benchmark:
            "logs/benchmarks/external/echonet.tsv"
        threads: echonet_config()["jobs"]
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            env("external")
        script:
            "../scripts/echonet.py"


# UK Biobank, ACDC and the Kaggle Data Science Bowl as their owners distribute them
# (cinefm.external.{ukb,acdc,kaggle}): one rule per enabled cohort, on CPU. With root null the DAG
# first writes the cohort's synthetic release (cinefm.phantom.releases) and converts that.
for _cohort, (_root, _phantom) in external_releases().items():  # cohort -> (release root, is_phantom)
    if _phantom:

        rule:
            name:
                f"{_cohort}_phantom"
            output:
                truth=f"{_root}/truth.csv",
                **({"lvef": f"{_root}/lvef.csv"} if _cohort == "ukb" else {}),
            params:
                cohort=_cohort,
                out=lambda w, output: os.path.dirname(output.truth),
                options=dict(config["external"][_cohort]["phantom"]),
            log:
                f"logs/external/{_cohort}_phantom.log",
            benchmark:
                f"logs/benchmarks/external/{_cohort}_phantom.tsv"
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
            root=lambda w, input: external_release_root(input.release),
            phantom=_phantom,
            lvef=lambda w, input: input.get("lvef"),
            tmp_dir=config["external"][_cohort].get("tmp_dir"),
            out=lambda w, output: os.path.dirname(output.files),
            frame_size=config["ingest"]["frame_size"],
            percentiles=config["ingest"]["intensity_percentiles"],
            compression=config["ingest"]["compression"],
            min_frames=config["ingest"]["min_frames"],
            views=config["ingest"]["views"],  # geometry.slice_tolerance_mm, as ingestion
            key_file=config["privacy"].get("key_file"),
        log:
            f"logs/external/{_cohort}.log",
        benchmark:
            f"logs/benchmarks/external/{_cohort}.tsv"
        threads: config["external"][_cohort]["jobs"]
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            env("external")
        script:
            "../scripts/external_cohort.py"

