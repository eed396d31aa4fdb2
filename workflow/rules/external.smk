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
