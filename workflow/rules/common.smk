# Config helpers and input functions shared by the rule files.
import os

R = config["results"]
COHORT = config["cohort"]
IS_PHANTOM = COHORT["kind"] == "phantom"
PHANTOM_DIR = f"{R}/phantom"

# Each rule file appends the outputs a full run must produce.
FINAL_TARGETS = []


def final_targets():
    return FINAL_TARGETS


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
from cinefm.train.experiments import experiment_paths, load_experiment

FINETUNE_EXPERIMENTS = {
    p.stem: load_experiment(p, config["labels"]["diseases"])
    for p in experiment_paths(config["finetune"]["experiments"])
}


def finetune_experiments():
    """Experiments a full run trains: config finetune.select, or every experiment file."""
    select = config["finetune"].get("select")
    return [p.stem for p in experiment_paths(config["finetune"]["experiments"], select)]


def stats_figure_kind(wildcards):
    """Report subcategory of a figure in results/stats/figures, from its file name."""
    if wildcards.name.startswith("roc_"):
        return "ROC curves"
    named = {"lvef_subgroups": "LVEF subgroups", "view_attention": "View attention"}
    return named.get(wildcards.name, "Bland-Altman")


def finetune_pretrain_ckpt(wildcards):
    """The contrastive checkpoint an experiment with init clip starts from ({} otherwise)."""
    exp = FINETUNE_EXPERIMENTS[wildcards.experiment]
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
        exp = FINETUNE_EXPERIMENTS[name]
        check_supported(exp.encoder or config["models"]["video"]["name"])  # MViT trunks only: says why not
    return names
