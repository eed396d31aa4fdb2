# cinefm: raw DICOM + reports -> HDF5 -> text/labels -> splits -> pre-training
# -> fine-tuning -> statistics and report. See README.md and workflow/rules/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/phantom.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/echo.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stats.smk"


rule all:
    default_target: True
    input:
        final_targets(),
