# Config helpers, input functions and the list of final targets, shared by the rule files.
# Rule files read what they share through the functions here, never through a global set in
# another rule file, so the include order in the Snakefile does not matter (common.smk first).
import functools
import os

from cinefm.train.experiments import experiment_paths, load_experiment

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
        name: {"finetune": {k: v for k, v in (section.get("finetune") or {}).items() if k in ("weights", "overrides")}}
        for name, section in config["external"].items() if section
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
    experiments = finetune_experiments() + sorted(echo_experiments())
    targets += [f"{finetune}/{name}/{out}" for name in experiments for out in FINETUNE_OUTPUTS]
    if echonet_root():
        targets += [f"{R}/external/echonet/files.csv", f"{R}/external/echonet/studies.csv"]
    if echo_experiments():
        targets.append(f"{R}/stats/echonet/comparison.csv")
    targets += [f"{R}/external/{c}/{t}.csv" for c in external_releases() for t in ("files", "studies")]
    targets += attention_report_inputs()
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
    """Experiments a full run trains: config finetune.select, or every experiment file."""
    return [p.stem for p in experiment_paths(config["finetune"]["experiments"], config["finetune"]["select"])]


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
    exp = mri_experiments()[wildcards.experiment]
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
    """flow.csv of each enabled UKB/ACDC/Kaggle adapter (the report's external section)."""
    return [f"{R}/external/{c}/flow.csv" for c in external_releases()]


def external_release_input(cohort):
    """The adapter's inputs: the synthetic release's truth.csv (and lvef.csv), or the root (and --lvef CSV)."""
    root, phantom = external_releases()[cohort]
    lvef = (config["external"][cohort].get("lvef") if cohort == "ukb" else None) or (
        f"{root}/lvef.csv" if phantom and cohort == "ukb" else None)
    return {"release": f"{root}/truth.csv" if phantom else root, **({"lvef": lvef} if lvef else {})}


def external_release_root(release):
    """The release folder from the adapter's ``release`` input (a folder, or the phantom's truth.csv)."""
    return release if os.path.isdir(release) and not release.endswith(".csv") else os.path.dirname(release)

# Attention heat-map videos (attention.smk): MViT trunks only, refused with the reason otherwise.
from cinefm.viz.support import check_supported


@functools.cache
def attention_experiments():
    """Experiments whose heat-map videos a run makes (config attention.experiments; null = all of the run)."""
    section = config.get("attention")
    if not section:
        return []
    chosen = section["experiments"]
    run = finetune_experiments()
    names = run if chosen is None else list(chosen)
    for name in names:
        if name not in run:
            raise ValueError(f"config.attention.experiments: {name!r} is not an experiment this run trains "
                             f"(config finetune.select / {config['finetune']['experiments']}: {sorted(run)}) — "
                             "add it there or remove it here")
        exp = mri_experiments()[name]
        check_supported(exp.encoder or config["models"]["video"]["name"])  # MViT trunks only: says why not
    return names


def attention_report_inputs():
    """The heat-map video tables the report embeds ([] when no attention videos are configured)."""
    return [f"{R}/attention/{name}/videos.csv" for name in attention_experiments()]

