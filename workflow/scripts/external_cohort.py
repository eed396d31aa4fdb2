from cinefm.dicom.views import load_view_rules
from cinefm.external.release import Preprocess, run_cohort
from cinefm.log import setup_logging
from cinefm.privacy import load_key

setup_logging(snakemake.log[0])
p = snakemake.params
options = {"lvef": p.lvef, "tmp_root": p.tmp_dir} if p.cohort == "ukb" else {}
run_cohort(p.cohort, p.root, p.out, key=load_key(p.key_file, phantom=p.phantom),
           pre=Preprocess(frame_size=p.frame_size, percentiles=tuple(p.percentiles), compression=p.compression,
                          min_frames=p.min_frames, tol_mm=load_view_rules(p.views).geometry.slice_tolerance_mm),
           jobs=snakemake.threads, **options)
