"""Archive-wide rules: duplicates, non-cine, inconsistent series, views, selection."""

import pandas as pd
import pytest

from cinefm.config import REPO_ROOT, ConfigError
from cinefm.dicom.scan import list_files, scan_files
from cinefm.dicom.series import apply_series_rules
from cinefm.dicom.views import load_view_rules, normalize_vendor, view_rules_from_dict
from cinefm.privacy import PHANTOM_KEY

RULES = load_view_rules(REPO_ROOT / "config" / "views.yaml")


@pytest.fixture(scope="module")
def raw(archive):
    files = list_files(archive.root)
    return scan_files(archive.root, list(files["relpath"]), PHANTOM_KEY)[0]


@pytest.fixture(scope="module")
def ruled(raw):
    return apply_series_rules(raw, RULES, min_frames=10).set_index("relpath")


def test_every_file_gets_its_expected_status(archive, ruled):
    got = ruled["status"].to_dict()
    wrong = {p: (got[p], want) for p, want in archive.truth.items() if got[p] != want}
    assert not wrong


def test_the_copy_outside_the_series_folder_is_the_duplicate(ruled):
    row = ruled.loc["faults/copy_of_lax"]
    assert row.reason.startswith("duplicate_content:") and "a/lax/" in row.reason
    row = ruled.loc["faults/same_sop_other_pixels.dcm"]
    assert row.reason.startswith("duplicate_sop:") and "a/lax/" in row.reason


def test_missing_frame_and_mixed_matrix_name_the_problem(ruled):
    gap = ruled[ruled.index.str.startswith("a/gap/")]["reason"].unique()
    assert len(gap) == 1 and gap[0].startswith("missing_frame:")
    mixed = ruled[ruled.index.str.startswith("a/mixed/")]["reason"].unique()
    assert len(mixed) == 1 and mixed[0].startswith("matrix:") and "16x16" in mixed[0]


def test_views_and_the_rule_that_matched_are_recorded(ruled):
    lax = ruled[ruled.index.str.startswith("a/lax/")]
    assert set(lax["view"]) == {"4CH"} and lax["view_rule"].iloc[0].startswith("pattern:siemens:")
    assert ruled.loc["b/enh/IM_0001", "view"] == "SAX"
    assert set(ruled[ruled.index.str.startswith("b/rle/")]["view"]) == {"2CH"}
    inline = ruled[ruled.index.str.startswith("a/inline/")]
    assert inline["view_rule"].iloc[0].startswith("exclude:any:") and inline["view"].isna().all()
    assert ruled.loc[ruled["status"].eq("ok"), "selected"].all()


def test_unmatched_sax_stack_is_found_by_geometry(raw):
    df = raw.copy()
    sax = df["description"].fillna("").str.startswith("CINE_segmented_SAX_b")
    df.loc[sax, "description"] = "Series 7"
    out = apply_series_rules(df, RULES, min_frames=10)
    rows = out[out["relpath"].isin(df.loc[sax, "relpath"])]
    assert set(rows["view"]) == {"SAX"} and rows["view_rule"].str.startswith("geometry:").all()
    assert rows["selected"].all()


def test_unmatched_single_slice_cine_is_unsupported(raw):
    df = raw.copy()
    lax = df["relpath"].str.startswith("a/lax/")
    df.loc[lax, "description"] = "Series 9"
    out = apply_series_rules(df, RULES, min_frames=10)
    rows = out[out["relpath"].isin(df.loc[lax, "relpath"])]
    assert set(rows["status"]) == {"unsupported"} and rows["reason"].str.startswith("no_view:").all()


def test_repeat_series_keeps_the_latest(raw):
    lax = raw[raw["relpath"].str.startswith("a/lax/")]
    again = lax.assign(relpath="repeat/" + lax["relpath"], series_id="Rrepeat", series_number=99,
                       sha256=lax["sha256"] + "x", sop_id=lax["sop_id"] + "x")
    out = apply_series_rules(pd.concat([raw, again], ignore_index=True), RULES, min_frames=10)
    first = out[out["relpath"].isin(lax["relpath"])]
    assert not first["selected"].any() and first["reason"].str.startswith("superseded:").all()
    assert out.loc[out["series_id"].eq("Rrepeat"), "selected"].all()


def test_too_few_frames_is_not_cine(raw):
    out = apply_series_rules(raw, RULES, min_frames=20)
    lax = out[out["description"].eq("CINE_segmented_LAX_4Ch") & out["relpath"].str.startswith("a/lax/")]
    assert set(lax["status"]) == {"not_cine"} and lax["reason"].str.startswith("too_few_frames:").all()


def test_bad_views_file_names_the_key():
    with pytest.raises(ConfigError, match=r"views\.any\.5CH"):
        view_rules_from_dict({"views": {"any": {"5CH": ["x"]}}})
    with pytest.raises(ConfigError, match=r"exclude\.ge.*bad regular expression"):
        view_rules_from_dict({"exclude": {"ge": ["(unclosed"]}})


def test_uk_biobank_names_match_by_default():
    assert RULES.match("CINE_segmented_LAX_2Ch", "siemens")[1] == "2CH"
    assert RULES.match("CINE_segmented_LAX_3Ch", "siemens")[1] == "3CH"
    assert RULES.match("CINE_segmented_SAX_b11", "siemens")[1] == "SAX"
    assert RULES.match("CINE_segmented_SAX_InlineVF", "siemens")[0] == "exclude"
    assert normalize_vendor("GE MEDICAL SYSTEMS") == "ge" and normalize_vendor("Philips Healthcare") == "philips"
