# cinefm: raw DICOM + reports -> HDF5 -> text/labels -> splits -> pre-training
# -> fine-tuning -> statistics and report. See README.md and workflow/rules/.
from snakemake.utils import min_version, validate

min_version("9.0")


# The demo's configuration, only when the command line names no --configfile: a paper run
# (--configfile config/paper.yaml [site.yaml ...]) is the named files alone, merged in order,
# never paper.yaml layered over the demo's keys. --config key=value applies either way.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/phantom.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/sites.smk"
include: "workflow/rules/echo.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stats.smk"


rule all:
    default_target: True
    input:
        final_targets(),
