# Public-dataset adapters (cinefm.external): a release as distributed -> results/external/{name}/
# files.csv (status per video), h5/{patient}/{study}.h5, studies.csv (for splits), labels.csv.
# A rule exists only when its config root is set (config external.<name>.root).

EXTERNAL = config.get("external", {})
ECHONET = EXTERNAL.get("echonet") or {}


if ECHONET.get("root"):

    rule echonet:
        input:
            filelist=f"{ECHONET['root']}/FileList.csv",
        output:
            files=f"{R}/external/echonet/files.csv",
            studies=f"{R}/external/echonet/studies.csv",
            labels=f"{R}/external/echonet/labels.csv",
            flow=f"{R}/external/echonet/flow.csv",
            tracings=f"{R}/external/echonet/tracings_issues.csv",
        params:
            root=ECHONET["root"],
            out=f"{R}/external/echonet",
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
