# Public-dataset adapters (cinefm.external): a release as distributed -> results/external/{name}/
# files.csv (status per video), h5/{patient}/{study}.h5, studies.csv (for splits), labels.csv.
# A rule exists only when its config root is set (config external.<name>.root), or, for EchoNet,
# when its synthetic release is enabled (external.echonet.phantom.enabled; cinefm.phantom.echo).
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
