# Config helpers, input functions and the list of final targets, shared by the rule files.
# Rule files read what they share through the functions here, never through a global set in
# another rule file, so the include order in the Snakefile does not matter (common.smk first).
import functools
import os

from cinefm.external.cohorts import SITE_PREFIX, cohort_tables, cohort_tasks
from cinefm.train.experiments import TASK_DISEASES, TASK_LVEF, disease_setup, experiment_paths, load_experiment, per_disease_name

R = config["results"]
COHORT = config["cohort"]
IS_PHANTOM = COHORT["kind"] == "phantom"
PHANTOM_DIR = f"{R}/phantom"


def ingest_dir():
    return f"{R}/ingest"


def ingest_shards():
    return list(range(config["ingest"]["shards"]))


def pretrain_dir():
    """The pre-training run folder, results/pretrain/<pretrain.run>/."""
    return f"{R}/pretrain/{config['pretrain']['run']}"


def finetune_dir():
    return f"{R}/finetune"


def finetune_config():
    """Everything a fine-tuning job resolves its recipe from (cinefm.train.recipe); finetune.select and
    finetune.experiments only pick jobs, and an external cohort contributes its weights and overrides."""
    external = {
        name: {"finetune": {k: v for k, v in section["finetune"].items() if k in ("weights", "overrides")}}
        for name, section in config["external"].items() if isinstance(section, dict) and section.get("finetune")
    }
    return {
        **{k: config[k] for k in ("labels", "splits", "data", "models")},
        "pretrain": {"run": config["pretrain"]["run"]},
        "finetune": {k: v for k, v in config["finetune"].items() if k not in ("select", "experiments")},
        "external": external,
    }


def final_targets():
    """Every output a full run produces (rule all), stage by stage."""
    ingest, pretrain, finetune = ingest_dir(), pretrain_dir(), finetune_dir()
    targets = [f"{PHANTOM_DIR}/faults.csv"] if IS_PHANTOM else []
    targets += [f"{ingest}/files.parquet", f"{ingest}/flow.csv", f"{ingest}/flow.png", f"{ingest}/studies.csv",
                *expand(f"{ingest}/extract/shard_{{shard}}.csv", shard=ingest_shards())]
    targets += [f"{R}/config.yaml"]  # the configuration this run resolved to (rule run_config)
    targets += [f"{R}/text/reports.json", f"{R}/labels/labels.csv"]
    targets += [f"{R}/labels/agreement.csv"] if human_labels_csv() else []
    targets += [f"{R}/splits/splits.csv", f"{R}/splits/train_fractions.csv"]
    targets += [f"{pretrain}/{name}" for name in ("last.ckpt", "metrics.csv", "embeddings.h5", "retrieval.csv",
                                                   "umap.png", "structure.csv")]
    experiments = finetune_runs() + sorted(echo_experiments())
    targets += [f"{finetune}/{name}/{out}" for name in experiments for out in FINETUNE_OUTPUTS]
    if echonet_root():
        targets += [f"{R}/external/echonet/files.csv", f"{R}/external/echonet/studies.csv"]
    if echo_experiments():
        targets.append(f"{R}/stats/echonet/comparison.csv")
    targets += [f"{R}/external/{c}/{t}.csv" for c in external_releases() for t in ("files", "studies")]
    targets += site_targets()
    targets += attention_report_inputs()
    targets += external_test_outputs() + external_stats_outputs()
    targets.append(f"{R}/report/index.html")
    return targets


FINETUNE_OUTPUTS = ("best.ckpt", "predictions.csv", "metrics.csv", "hparams.yaml")


def env(name):
    """Path of a rule group's conda env file, relative to the rule files."""
    return f"../../envs/{name}.yaml"


def dicom_root():
    """The DICOM archive ingestion reads: the phantom's export or the configured root."""
    if IS_PHANTOM:
        return f"{PHANTOM_DIR}/dicom"
    root = COHORT.get("dicom_root")
    if not root:
        raise ValueError("config.cohort.dicom_root: required when cohort.kind is 'dicom'")
    return root


def reports_csv():
    """The free-text report CSV (columns patient_id, accession_number, report_text, ...)."""
    if IS_PHANTOM:
        return f"{PHANTOM_DIR}/reports.csv"
    path = COHORT.get("reports_csv")
    if not path:
        raise ValueError("config.cohort.reports_csv: required when cohort.kind is 'dicom'")
    return path


def human_labels_csv():
    """Human annotators' labels, or [] when the cohort has none."""
    if IS_PHANTOM:
        return f"{PHANTOM_DIR}/human_labels.csv"
    return COHORT.get("human_labels_csv") or []


# Fine-tuning experiments: config/experiments/<name>.yaml, read and validated by
# cinefm.train.experiments while the DAG is built, so a bad file fails before any job runs.
@functools.cache
def mri_experiments():
    """Every MRI experiment file: name -> cinefm.train.experiments.Experiment."""
    return {p.stem: load_experiment(p, config["labels"]["diseases"])
            for p in experiment_paths(config["finetune"]["experiments"])}


def finetune_experiments():
    """Experiment files a full run trains: config finetune.select, or every experiment file."""
    return [p.stem for p in experiment_paths(config["finetune"]["experiments"], config["finetune"]["select"])]


def per_disease():
    """True when a task: diseases file trains one model per disease (config finetune.disease.models)."""
    return config["finetune"]["disease"].get("models", "multi_label") == "per_disease"


@functools.cache
def disease_setups():
    """Setups of the task: diseases files (``disease_<setup>``): setup -> file name; the finetune_disease
    rule trains ``<disease>_<setup>`` from the file. A per-disease run may not share its name with a file."""
    out = {}
    for name, exp in mri_experiments().items():
        if exp.task != TASK_DISEASES:
            continue
        for disease in config["labels"]["diseases"]:
            run = per_disease_name(name, disease)
            if run in mri_experiments():
                raise ValueError(f"{exp.path}: its {disease} run would be named {run!r}, as the experiment file "
                                 f"{mri_experiments()[run].path}; with finetune.disease.models: per_disease "
                                 "remove or rename one of them")
        out[disease_setup(name)] = name
    return out


def finetune_runs():
    """Fine-tuning runs (folders of results/finetune) of a full run: every selected file, a task: diseases
    file as one run per disease when finetune.disease.models is per_disease."""
    runs = []
    for name in finetune_experiments():
        if per_disease() and mri_experiments()[name].task == TASK_DISEASES:
            runs += [per_disease_name(name, d) for d in config["labels"]["diseases"]]
        else:
            runs.append(name)
    return runs


def run_experiment(wildcards):
    """The Experiment behind a finetune job (wildcard experiment) or a finetune_disease job (disease, setup)."""
    if "setup" in wildcards.keys():
        return mri_experiments()[disease_setups()[wildcards.setup]].for_disease(
            wildcards.disease, config["labels"]["diseases"])
    return run_of(wildcards.experiment)


def run_of(run):
    """The Experiment of a run name: an experiment file, or a per-disease run ``<disease>_<setup>``."""
    return mri_experiments().get(run) or _per_disease_experiment(run)


def lvef_on_ukb():
    """True when LVEF experiments train on the UK Biobank cohort (config finetune.lvef.cohort: ukb)."""
    if config["finetune"]["lvef"].get("cohort", "reports") != "ukb":
        return False
    if "ukb" not in external_releases():
        raise ValueError("config.finetune.lvef.cohort: ukb needs the UK Biobank cohort — set external.ukb.enabled: "
                         "true (and external.ukb.root, external.ukb.lvef), or finetune.lvef.cohort: reports")
    return True


def finetune_inputs(wildcards):
    """Splits, manifest and labels of a fine-tuning job: the main cohort's, or the UK Biobank cohort's
    (its participant-level split, results/splits/ukb.csv) for LVEF with finetune.lvef.cohort: ukb."""
    exp = run_experiment(wildcards)
    if exp.task == TASK_LVEF and lvef_on_ukb():
        return {"splits": f"{R}/splits/ukb.csv", "studies": f"{R}/external/ukb/studies.csv",
                "labels": f"{R}/external/ukb/labels.csv"}
    return {"splits": f"{R}/splits/splits.csv", "studies": f"{R}/ingest/studies.csv",
            "labels": f"{R}/labels/labels.csv"}


def experiment_file(wildcards):
    """The experiment file of a finetune / finetune_disease job."""
    return str(run_experiment(wildcards).path)


# External cohorts (external.smk, echo.smk): EchoNet-Dynamic, or its synthetic stand-in.
def echonet_config():
    """config external.echonet ({} when not configured)."""
    return config["external"].get("echonet") or {}


def echonet_phantom():
    """Options of the synthetic release ({} when a real release is configured)."""
    echonet = echonet_config()
    return (echonet.get("phantom") or {}) if not echonet.get("root") else {}


def echonet_is_phantom():
    return bool(echonet_phantom().get("enabled"))


def echonet_root():
    """The release to convert (external.echonet.root, else the phantom's), or None when EchoNet is off."""
    return echonet_config().get("root") or (f"{R}/external/echonet_phantom" if echonet_is_phantom() else None)


def echonet_finetune():
    """config external.echonet.finetune ({} when absent)."""
    return echonet_config().get("finetune") or {}


@functools.cache
def echo_experiments():
    """Echo fine-tuning experiments (one per encoder, EchoNet's recipe): name -> Experiment; {} when off."""
    section = echonet_finetune()
    if not (echonet_root() and section):
        return {}
    found = {p.stem: load_experiment(p, config["labels"]["diseases"])
             for p in experiment_paths(section["experiments"], section["select"])}
    for name, exp in found.items():
        if exp.cohort != "echonet":
            raise ValueError(f"{exp.path}: external.echonet.finetune.experiments holds only cohort: echonet "
                             f"experiments (this one says {exp.cohort!r})")
        if name in mri_experiments():
            raise ValueError(f"{exp.path}: name {name!r} is also an MRI experiment; both would write "
                             f"{finetune_dir()}/{name}/ — rename one")
    return found


def echonet_report_inputs():
    """The echo statistics the report shows ([] when EchoNet is not configured)."""
    if not echo_experiments():
        return []
    return [f"{R}/stats/echonet/{n}.csv" for n in ("regression", "auroc", "comparison")]


def stats_figure_kind(wildcards):
    """Report subcategory of a figure in results/stats/figures, from its file name."""
    if wildcards.name.startswith("roc_"):
        return "ROC curves"
    named = {"lvef_subgroups": "LVEF subgroups", "view_attention": "View attention"}
    return named.get(wildcards.name, "Bland-Altman")


def finetune_pretrain_ckpt(wildcards):
    """The contrastive checkpoint an experiment with init clip starts from ({} otherwise)."""
    exp = run_experiment(wildcards)
    if exp.init != "clip":
        return {}
    run = exp.pretrain_run or config["pretrain"]["run"]
    return {"pretrain": f"{R}/pretrain/{run}/last.ckpt"}


def external_releases():
    """UKB/ACDC/Kaggle cohorts enabled in ``config.external``: cohort -> (release root, is_phantom).

    With ``root`` null the DAG writes the cohort's synthetic release under ``results/external/``.
    """
    ext = config.get("external") or {}
    out = {}
    for cohort in ("ukb", "acdc", "kaggle"):
        ccfg = ext.get(cohort) or {}
        if ccfg.get("enabled"):
            out[cohort] = (ccfg.get("root") or f"{R}/external/{cohort}_phantom", not ccfg.get("root"))
    return out


# Tables every UKB/ACDC/Kaggle adapter writes (cinefm.external.{ukb,acdc,kaggle}).
EXTERNAL_TABLES = ("files", "series", "studies", "labels", "flow")


def external_flows():
    """flow.csv of each enabled UKB/ACDC/Kaggle adapter and DICOM site (the report's external section)."""
    return [f"{R}/external/{c}/flow.csv" for c in external_releases()] + [
        f"{site_dir(s)}/ingest/flow.csv" for s in external_sites()]  # and each second DICOM site's (sites.smk)


def external_release_input(cohort):
    """The adapter's inputs: the synthetic release's truth.csv (and lvef.csv), or the root (and --lvef CSV)."""
    root, phantom = external_releases()[cohort]
    lvef = (config["external"][cohort].get("lvef") if cohort == "ukb" else None) or (
        f"{root}/lvef.csv" if phantom and cohort == "ukb" else None)
    return {"release": f"{root}/truth.csv" if phantom else root, **({"lvef": lvef} if lvef else {})}


def external_release_root(release):
    """The release folder from the adapter's ``release`` input (a folder, or the phantom's truth.csv)."""
    return release if os.path.isdir(release) and not release.endswith(".csv") else os.path.dirname(release)

# External tests (evaluate.smk): every trained model on every enabled ACDC/Kaggle cohort, test units only.
def external_test_cohorts():
    """Cohorts that external_test jobs evaluate on — the enabled ACDC and Kaggle releases
    (results/external/<name>/) and every second DICOM site as ``site_<name>`` (results/sites/<name>/), when
    config external.evaluate ([] otherwise). UK Biobank trains LVEF and is never one."""
    if not config["external"].get("evaluate", True):
        return []
    return [c for c in external_releases() if c != "ukb"] + [f"{SITE_PREFIX}{s}" for s in external_sites()]


def external_cohort_tables(cohort):
    """The study manifest and labels table of a test-only cohort: an adapter's results/external/<name>/, or a
    site's ingestion and labels under results/sites/<name>/ (cohort ``site_<name>``; cinefm.external.cohorts)."""
    return cohort_tables(R, cohort)


# Second DICOM sites (sites.smk): config external.sites.<name>, each through the main cohort's ingestion,
# reports and labels rules (reused in sites.smk) under results/sites/<name>/; a null dicom_root is the
# synthetic site its phantom section describes (another seed and scanner-vendor mix).
def external_sites():
    """config external.sites: site name -> section ({} when none)."""
    return dict(config["external"].get("sites") or {})


def site_dir(site):
    return os.path.dirname(os.path.dirname(cohort_tables(R, f"{SITE_PREFIX}{site}")["studies"]))


def site_is_phantom(site):
    """True when the site is the synthetic one (dicom_root null)."""
    section = external_sites()[site]
    if section.get("dicom_root"):
        return False
    if not section.get("phantom"):
        raise ValueError(f"config.external.sites.{site}: dicom_root is null and there is no phantom section; set "
                         "dicom_root and reports_csv (a real export) or phantom (a synthetic site)")
    return True


def site_phantom_dir(site):
    return f"{site_dir(site)}/phantom"


def site_dicom_root(site):
    """The DICOM export of a site: external.sites.<site>.dicom_root, or its synthetic export."""
    return f"{site_phantom_dir(site)}/dicom" if site_is_phantom(site) else external_sites()[site]["dicom_root"]


def site_reports_csv(site):
    """The site's free-text reports CSV (the columns of cohort.reports_csv)."""
    if site_is_phantom(site):
        return f"{site_phantom_dir(site)}/reports.csv"
    path = external_sites()[site].get("reports_csv")
    if not path:
        raise ValueError(f"config.external.sites.{site}.reports_csv: required with a dicom_root (the site's labels "
                         "come from its reports, as the main cohort's)")
    return path


def site_human_labels_csv(site):
    """The site's human annotators' labels, or [] when it has none (a synthetic site with human_label_fraction 0)."""
    if site_is_phantom(site):
        labelled = external_sites()[site]["phantom"].get("human_label_fraction", config["phantom"].get(
            "human_label_fraction", 0.4))
        return f"{site_phantom_dir(site)}/human_labels.csv" if labelled else []
    return external_sites()[site].get("human_labels_csv") or []


def site_shards(site):
    """Scan/extract shards of a site's ingestion (external.sites.<site>.shards, default 1)."""
    return list(range(int(external_sites()[site].get("shards", 1))))


def site_targets():
    """Every site's ingestion flow and labels (and label agreement where it has human labels)."""
    out = []
    for site in external_sites():
        d = site_dir(site)
        out += [f"{d}/ingest/flow.csv", f"{d}/ingest/studies.csv", f"{d}/text/reports.json", f"{d}/labels/labels.csv"]
        out += [f"{d}/labels/agreement.csv"] if site_human_labels_csv(site) else []
    return out


def external_test_runs(cohort):
    """Runs of this workflow with at least one task the cohort has a reference for (cohort_tasks)."""
    tasks = cohort_tasks(cohort)
    out = []
    for run in finetune_runs():
        exp = run_of(run)
        wanted = exp.tasks(config["labels"]["diseases"])
        if tasks is None or set(wanted) & set(tasks):
            out.append(run)
    return out


def _per_disease_experiment(run):
    for setup, name in disease_setups().items():
        disease = run[: -len(setup) - 1]
        if run.endswith(f"_{setup}") and disease in config["labels"]["diseases"]:
            return mri_experiments()[name].for_disease(disease, config["labels"]["diseases"])
    raise KeyError(run)


def external_test_outputs():
    """results/external_test/<cohort>/<run>/predictions.csv of every (cohort, run) pair."""
    return [f"{R}/external_test/{c}/{run}/predictions.csv" for c in external_test_cohorts()
            for run in external_test_runs(c)]


def external_stats_outputs():
    """The external validation tables ([] without external cohorts)."""
    if not external_test_outputs():
        return []
    return [f"{R}/stats/external.csv", f"{R}/stats/external_delong.csv"]


def splits_external_cohorts():
    """Test-only cohorts in splits.csv: config splits.external plus the external test cohorts (the leakage
    check covers every unit a model is tested on)."""
    sites = {f"{SITE_PREFIX}{s}" for s in external_sites()}  # tested or not, a site never trains
    return sorted(set(config["splits"]["external"]) | set(external_test_cohorts()) | sites)


# Attention heat-map videos (attention.smk): MViT trunks only, refused with the reason otherwise.
from cinefm.viz.support import check_supported


@functools.cache
def attention_experiments():
    """Experiments whose heat-map videos a run makes (config attention.experiments; null = all of the run)."""
    section = config.get("attention")
    if not section:
        return []
    chosen = section["experiments"]
    run = finetune_runs()
    names = run if chosen is None else list(chosen)
    for name in names:
        if name not in run:
            raise ValueError(f"config.attention.experiments: {name!r} is not an experiment this run trains "
                             f"(config finetune.select / {config['finetune']['experiments']}: {sorted(run)}) — "
                             "add it there or remove it here")
        exp = run_of(name)
        check_supported(exp.encoder or config["models"]["video"]["name"])  # MViT trunks only: says why not
    return names


def attention_inputs(wildcards):
    """The fine-tuned checkpoint and the data it was tested on (finetune_inputs, less the labels)."""
    data = finetune_inputs(wildcards)
    return {"ckpt": f"{finetune_dir()}/{wildcards.experiment}/best.ckpt", "splits": data["splits"],
            "studies": data["studies"]}


def attention_report_inputs():
    """The heat-map video tables the report embeds ([] when no attention videos are configured)."""
    return [f"{R}/attention/{name}/videos.csv" for name in attention_experiments()]

