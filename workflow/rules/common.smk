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


# Fine-tuning experiments: config/experiments/<name>.yaml, validated against
# workflow/schemas/experiment.schema.yaml while the DAG is built, so a bad file fails
# before any job runs (the job re-checks with cinefm.train.experiments).
import jsonschema as _jsonschema
import yaml as _yaml

with open(os.path.join(workflow.basedir, "workflow", "schemas", "experiment.schema.yaml")) as _fh:
    _EXPERIMENT_VALIDATOR = _jsonschema.Draft7Validator(_yaml.safe_load(_fh))


def _read_experiment(path):
    with open(path) as fh:
        doc = _yaml.safe_load(fh)
    errors = sorted(_EXPERIMENT_VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        key = ".".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise ValueError(f"{path}: {key}: {errors[0].message} — an experiment file holds task, init, "
                         "mode, fraction, seed (optional: fraction_seed, pretrain_run, description); "
                         "see workflow/schemas/experiment.schema.yaml")
    return doc


def _read_experiments(directory):
    if not os.path.isdir(directory):
        raise ValueError(f"config.finetune.experiments: {directory} is not a directory of experiment files")
    names = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".yaml"))
    return {name: _read_experiment(os.path.join(directory, f"{name}.yaml")) for name in names}


FINETUNE_EXPERIMENTS = _read_experiments(config["finetune"]["experiments"])


def finetune_experiments():
    """Experiments a full run trains: config finetune.select, or every experiment file."""
    select = config["finetune"].get("select")
    if select is None:
        return list(FINETUNE_EXPERIMENTS)
    missing = [name for name in select if name not in FINETUNE_EXPERIMENTS]
    if missing:
        raise ValueError(f"config.finetune.select: no experiment file {missing[0]}.yaml in "
                         f"{config['finetune']['experiments']} (available: {sorted(FINETUNE_EXPERIMENTS)})")
    return list(select)


def finetune_pretrain_ckpt(wildcards):
    """The contrastive checkpoint an experiment with init clip starts from ({} otherwise)."""
    exp = FINETUNE_EXPERIMENTS[wildcards.experiment]
    if exp["init"] != "clip":
        return {}
    run = exp.get("pretrain_run") or config["pretrain"]["run"]
    return {"pretrain": f"{R}/pretrain/{run}/last.ckpt"}
