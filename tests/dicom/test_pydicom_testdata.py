"""Every DICOM file shipped with pydicom (many vendors, modalities, encodings) gets a status."""

from pathlib import Path

import pandas as pd
import pydicom

from cinefm.dicom.header import STATUSES
from cinefm.dicom.ingest import run_ingest
from cinefm.dicom.scan import list_files

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_the_run_finishes_with_a_status_per_file(tmp_path, ingest_cfg):
    run_ingest(TEST_FILES, tmp_path, ingest_cfg=ingest_cfg, jobs=1, phantom=True)
    files = pd.read_parquet(tmp_path / "ingest" / "files.parquet")
    assert sorted(files["relpath"]) == sorted(list_files(TEST_FILES)["relpath"])
    assert files["status"].isin(STATUSES).all()
    assert (files["reason"].ne("") | files["status"].eq("ok")).all()
    by_name = files.set_index("relpath")
    assert by_name.loc["MR_truncated.dcm", "status"] == "corrupt"
    assert by_name.loc["MR_small_jpeg_ls_lossless.dcm", "status"] == "unsupported"
    assert by_name.loc["CT_small.dcm", "status"] == "not_cine"
    assert by_name.loc["README.txt", "status"] == "not_dicom"
    assert (tmp_path / "ingest" / "flow.csv").is_file()
