"""HDF5 reading: the series index, lazy per-process handles, clear errors."""

import pickle

import h5py
import numpy as np
import pytest

from cinefm.data.h5 import DataError, H5Reader, MemoryReader, drop_short_series, scan_series

from .conftest import series_array, write_study


def test_scan_lists_one_row_per_lax_view_and_sax_slice(cohort):
    series = scan_series(cohort.manifest)
    full = series[series["study_id"] == "S000"]
    assert list(full["view"]) == ["4CH", "3CH", "2CH", "SAX", "SAX", "SAX", "SAX"]
    assert list(full["slice"]) == [0, 0, 0, 0, 1, 2, 3]
    assert set(full["frames"]) == {8} and set(full["height"]) == {20}
    missing = series[series["study_id"] == "S010"]  # patient 1 has no 3CH/2CH
    assert list(missing["view"]) == ["4CH", "SAX", "SAX", "SAX", "SAX"]


def test_short_series_are_dropped_with_a_count(cohort):
    series = scan_series(cohort.manifest)
    kept, dropped = drop_short_series(series, min_frames=2)
    n_single = int((series["frames"] == 1).sum())
    assert n_single > 0 and dropped == n_single
    assert kept["frames"].min() == 3  # 3-frame SAX (< T) is kept: frames get repeated


def test_reader_opens_nothing_until_read_and_pickles_without_handles(cohort):
    reader = H5Reader(max_open=2)
    assert not reader._files
    paths = list(cohort.manifest["h5"])
    for p in (paths[0], paths[1], paths[3]):  # paths[2] is the 3-frame study
        frames = reader.read(p, "SAX", 1)
        assert frames.shape == (8, 20, 20) and frames.dtype == np.uint8
        assert frames[5, 0, 0] == 10 + 20 * 5 + 1
    assert len(reader._files) == 2  # LRU bound
    clone = pickle.loads(pickle.dumps(reader))
    assert not clone._files and clone.max_open == 2
    assert np.array_equal(clone.read(paths[0], "4CH", 0), reader.read(paths[0], "4CH", 0))
    reader.close()
    assert not reader._files


def test_memory_reader_serves_the_same_arrays_as_the_files(cohort):
    path = str(cohort.manifest["h5"].iloc[0])
    mem = MemoryReader.from_h5([path])
    assert np.array_equal(mem.read(path, "SAX", 2), H5Reader().read(path, "SAX", 2))


def test_missing_file_and_wrong_study_id_name_the_file(tmp_path, cohort):
    bad = cohort.manifest.iloc[:1].assign(h5=str(tmp_path / "nope.h5"))
    with pytest.raises(DataError, match="nope.h5: HDF5 file of study S000 not found"):
        scan_series(bad)
    other = tmp_path / "other.h5"
    write_study(other, "P00", "SXXX", {"4CH": series_array(1, 4)})
    with pytest.raises(DataError, match="other.h5: root attribute study_id=SXXX"):
        scan_series(cohort.manifest.iloc[:1].assign(h5=str(other)))


def test_dataset_with_wrong_rank_is_rejected(tmp_path, cohort):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["study_id"] = "S000"
        fh.create_dataset("4CH", data=np.zeros((8, 20, 20), np.uint8))
    with pytest.raises(DataError, match=r"flat.h5: dataset 4CH has shape \(8, 20, 20\)"):
        scan_series(cohort.manifest.iloc[:1].assign(h5=str(path)))


@pytest.mark.parametrize("chunks", [(1, 8, 20, 20), (1, 1, 20, 20), None])
def test_reading_selected_frames_matches_indexing_the_whole_series(tmp_path, chunks):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("SAX", data=series_array(2, 8), chunks=chunks)
    frames = np.array([6, 1, 1, 3])
    got = H5Reader().read(str(path), "SAX", 1, frames)
    assert got.shape == (4, 20, 20)
    assert got[:, 0, 0].tolist() == [10 + 20 * f + 1 for f in (6, 1, 1, 3)]
    assert np.array_equal(MemoryReader.from_h5([str(path)]).read(str(path), "SAX", 1, frames), got)
