import pandas as pd
import pytest

from cinefm.atomic import atomic_path, write_csv, write_text


def test_failed_write_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_version(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "v1")
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_text("v2-partial")
            raise KeyError
    assert target.read_text() == "v1"


def test_write_csv_roundtrip(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_csv(df, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), df)


def test_atomic_file_gets_the_permissions_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode
