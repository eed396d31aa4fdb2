from cinefm.dicom.scan import write_filelist
from cinefm.log import setup_logging

setup_logging(snakemake.log[0])
write_filelist(snakemake.input[0], snakemake.output[0])
