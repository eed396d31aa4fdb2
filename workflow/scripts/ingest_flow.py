from cinefm.dicom.flow import write_flow
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
write_flow(
    snakemake.input.files,
    snakemake.input.manifests,
    snakemake.output.flow_csv,
    snakemake.output.flow_png,
    snakemake.output.studies,
)
