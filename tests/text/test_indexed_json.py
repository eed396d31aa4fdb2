import json
import pickle

import pytest

from cinefm.text.indexed_json import IndexedReports, index_path, write_indexed_json

ENTRIES = {
    "S000000000002": {"sentences": ["Café, naïve — ünïcode.", "LVEF 55 %."], "input_ids": [[2, 7, 3], [2, 9, 3]]},
    "S000000000001": {"sentences": ["No HCM."], "input_ids": [[2, 5, 3]]},
    "S000000000003": {"sentences": [], "input_ids": []},
}


@pytest.fixture
def written(tmp_path):
    return write_indexed_json(ENTRIES, tmp_path / "reports.json")


def test_file_is_one_valid_json_object_with_sorted_keys(written):
    doc = json.loads(written.read_text())
    assert doc == ENTRIES
    assert list(doc) == sorted(ENTRIES)


def test_reader_returns_every_entry_and_mapping_protocol(written):
    r = IndexedReports(written)
    assert len(r) == 3 and "S000000000001" in r and "S404" not in r
    assert list(r.keys()) == sorted(ENTRIES)
    for k, v in ENTRIES.items():
        assert r[k] == v
    with pytest.raises(KeyError):
        r["S404"]


def test_one_entry_loads_without_parsing_the_others(written):
    r = IndexedReports(written)
    raw = bytearray(written.read_bytes())
    start = raw.index(b'"S000000000002": ') + len(b'"S000000000002": ')
    raw[start:start + 10] = b"#" * 10  # corrupt another study's bytes in place
    written.write_bytes(bytes(raw))
    with pytest.raises(json.JSONDecodeError):
        json.loads(written.read_text())
    assert r["S000000000001"] == ENTRIES["S000000000001"]


def test_missing_or_stale_index_is_rebuilt_from_the_file(written, tmp_path, caplog):
    index_path(written).unlink()
    assert dict(IndexedReports(written)) == ENTRIES
    other = write_indexed_json({"S1": {"sentences": ["x"], "input_ids": [[1]]}}, tmp_path / "other.json")
    index_path(written).write_bytes(index_path(other).read_bytes())  # describes another file
    assert dict(IndexedReports(written)) == ENTRIES
    assert "rebuilding" in caplog.text


def test_reader_pickles_for_dataloader_workers(written):
    r = pickle.loads(pickle.dumps(IndexedReports(written)))
    assert r["S000000000002"] == ENTRIES["S000000000002"]


def test_missing_file_says_which_rule_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="reports"):
        IndexedReports(tmp_path / "reports.json")
