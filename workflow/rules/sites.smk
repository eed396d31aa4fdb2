# Second DICOM sites (config external.sites.<site>): the main cohort's own rules, reused with
# `use rule ... with:` and a {site} wildcard, write results/sites/<site>/{phantom,ingest,h5,text,labels}/.
# The site's studies are test-only (splits.csv stage external, cohort site_<site>) and evaluate.smk's
# external_test predicts them with every trained model. Paths and options come from common.smk
# (site_dicom_root(), site_reports_csv(), site_human_labels_csv(), site_shards(), ...).

if external_sites():

    wildcard_constraints:
        site="|".join(external_sites()),

    SITE = f"{R}/sites/{{site}}"

    # the synthetic site: the phantom generator with the site's seed and scanner-vendor mix
    use rule phantom as site_phantom with:
        output:
            dicom=directory(f"{SITE}/phantom/dicom"),
            reports=f"{SITE}/phantom/reports.csv",
            human_labels=f"{SITE}/phantom/human_labels.csv",
            truth=f"{SITE}/phantom/truth.csv",
            faults=f"{SITE}/phantom/faults.csv",
        params:
            options=lambda w: dict(config["external"]["sites"][w.site]["phantom"]),
        log:
            "logs/sites/{site}/phantom.log",
        benchmark:
            "logs/benchmarks/sites/{site}/phantom.tsv"

    use rule ingest_list as site_ingest_list with:
        input:
            lambda w: site_dicom_root(w.site),
        output:
            f"{SITE}/ingest/filelist.parquet",
        log:
            "logs/sites/{site}/ingest/list.log",
        benchmark:
            "logs/benchmarks/sites/{site}/ingest_list.tsv"

    use rule ingest_scan as site_ingest_scan with:
        input:
            filelist=f"{SITE}/ingest/filelist.parquet",
        output:
            table=f"{SITE}/ingest/scan/shard_{{shard}}.parquet",
        params:
            root=lambda w: site_dicom_root(w.site),
            shards=lambda w: len(site_shards(w.site)),
            phantom=lambda w: site_is_phantom(w.site),
            key_file=config["privacy"]["key_file"],
        log:
            "logs/sites/{site}/ingest/scan_{shard}.log",
        benchmark:
            "logs/benchmarks/sites/{site}/ingest_scan_{shard}.tsv"

    use rule ingest_merge as site_ingest_merge with:
        input:
            tables=lambda w: expand(f"{site_dir(w.site)}/ingest/scan/shard_{{shard}}.parquet", shard=site_shards(w.site)),
            views=config["ingest"]["views"],
        output:
            files=f"{SITE}/ingest/files.parquet",
            quarantine=f"{SITE}/ingest/quarantine.csv",
        log:
            "logs/sites/{site}/ingest/merge.log",
        benchmark:
            "logs/benchmarks/sites/{site}/ingest_merge.tsv"

    use rule ingest_extract as site_ingest_extract with:
        input:
            files=f"{SITE}/ingest/files.parquet",
            views=config["ingest"]["views"],
        output:
            manifest=f"{SITE}/ingest/extract/shard_{{shard}}.csv",
        params:
            root=lambda w: site_dicom_root(w.site),
            h5_root=lambda w: f"{site_dir(w.site)}/h5",
            shards=lambda w: len(site_shards(w.site)),
            frame_size=config["ingest"]["frame_size"],
            percentiles=config["ingest"]["intensity_percentiles"],
            compression=config["ingest"]["compression"],
        log:
            "logs/sites/{site}/ingest/extract_{shard}.log",
        benchmark:
            "logs/benchmarks/sites/{site}/ingest_extract_{shard}.tsv"

    use rule ingest_flow as site_ingest_flow with:
        input:
            files=f"{SITE}/ingest/files.parquet",
            manifests=lambda w: expand(f"{site_dir(w.site)}/ingest/extract/shard_{{shard}}.csv",
                                       shard=site_shards(w.site)),
        output:
            flow_csv=report(f"{SITE}/ingest/flow.csv", category="Ingestion", subcategory="site {site}"),
            flow_png=report(f"{SITE}/ingest/flow.png", category="Ingestion", subcategory="site {site}",
                            caption="../report/flow.rst"),
            studies=f"{SITE}/ingest/studies.csv",
        log:
            "logs/sites/{site}/ingest/flow.log",
        benchmark:
            "logs/benchmarks/sites/{site}/ingest_flow.tsv"

    use rule reports as site_reports with:
        input:
            reports=lambda w: site_reports_csv(w.site),
        output:
            json=f"{SITE}/text/reports.json",
            index=f"{SITE}/text/reports.json.idx",
            table=f"{SITE}/text/reports.csv",
            rejected=f"{SITE}/text/rejected.csv",
            tokenizer=directory(f"{SITE}/text/tokenizer"),
            pipeline=f"{SITE}/text/pipeline.json",
        params:
            text=config["text"],
            key_file=config["privacy"]["key_file"],
            phantom=lambda w: site_is_phantom(w.site),
        log:
            "logs/sites/{site}/reports.log",
        benchmark:
            "logs/benchmarks/sites/{site}/reports.tsv"

    use rule labels as site_labels with:
        input:
            reports=f"{SITE}/text/reports.csv",
            vocabulary=config["labels"]["vocabulary"],
        output:
            labels=f"{SITE}/labels/labels.csv",
        params:
            labels=config["labels"],
            cache_dir=lambda w: config["labels"]["llm"]["cache_dir"] or f"{site_dir(w.site)}/labels/llm_cache",
        log:
            "logs/sites/{site}/labels.log",
        benchmark:
            "logs/benchmarks/sites/{site}/labels.tsv"

    if config["labels"]["backend"] == "hf":

        use rule site_labels as site_labels_hf with:
            resources:
                mem_mb=64000,
                runtime=600,
                gpu=1,

        ruleorder: site_labels_hf > site_labels

    use rule agreement as site_agreement with:
        input:
            labels=f"{SITE}/labels/labels.csv",
            human=lambda w: site_human_labels_csv(w.site),
        output:
            table=f"{SITE}/labels/agreement.csv",
            figure=report(f"{SITE}/labels/agreement.png", category="Labels", subcategory="site {site}"),
        params:
            diseases=config["labels"]["diseases"],
            key_file=config["privacy"]["key_file"],
            phantom=lambda w: site_is_phantom(w.site),
            bootstrap=config["stats"]["bootstrap"],
            seed=config["stats"]["bootstrap_seed"],
            level=config["stats"]["ci_level"],
        log:
            "logs/sites/{site}/agreement.log",
        benchmark:
            "logs/benchmarks/sites/{site}/agreement.tsv"
