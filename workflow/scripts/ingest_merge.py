from cinefm.dicom.series import merge_scans
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
merge_scans(
    snakemake.input.tables,
    snakemake.output.files,
    views=snakemake.input.views,
    min_frames=snakemake.params.min_frames,
    quarantine_csv=snakemake.output.quarantine,
    id_map_parts=snakemake.input.get("id_map_parts"),
    id_map_out=snakemake.output.get("id_map"),
    jobs=snakemake.threads,
)
