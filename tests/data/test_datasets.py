"""ClipDataset and StudyDataset over the real HDF5 fixture cohort, and their collation."""

import math

import pytest
import torch

from cinefm.data.augment import TemporalAugMix
from cinefm.data.collate import ClipCollate, collate_studies
from cinefm.data.datasets import ClipDataset, StudyDataset
from cinefm.data.h5 import drop_short_series, scan_series
from cinefm.data.targets import load_targets
from cinefm.data.text import ReportSource
from cinefm.data.transforms import ClipSpec, ClipTransform

from .conftest import SIZE, SPECIAL, T

SPEC = ClipSpec(frames=T, size=SIZE)


@pytest.fixture(scope="module")
def series(cohort):
    return drop_short_series(scan_series(cohort.manifest), 2)[0]


@pytest.fixture(scope="module")
def clips(cohort, series):
    return ClipDataset(series, ReportSource(reports=cohort.reports),
                       ClipTransform(SPEC, True, TemporalAugMix()), sentences=2, special=SPECIAL,
                       text_max_tokens=32, seed=5)


def test_clip_items_pair_one_series_with_sentences_of_its_own_report(clips, series):
    assert clips.exclusions["series_without_report"] == int((series["patient_id"] == "P04").sum()) > 0
    assert len(clips) == int((series["patient_id"] != "P04").sum())
    item = clips[(3, 99)]
    assert item["video"].shape == (3, T, SIZE, SIZE) and item["video"].dtype == torch.float32
    ids = item["input_ids"].tolist()
    study_code = 200 + int(item["study_id"][1:3])
    assert ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep
    assert ids.count(study_code) == 2  # two sentences, both from this study's report


def test_clip_items_are_reproducible_from_their_seed(clips):
    a, b, c = clips[(5, 1)], clips[(5, 1)], clips[(5, 2)]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["input_ids"], b["input_ids"])
    assert not torch.equal(a["video"], c["video"])
    assert torch.equal(clips[5]["video"], clips[5]["video"])  # plain index: evaluation seed


def test_clip_collate_pads_tokens_with_the_pad_id_and_masks_them():
    items = [{"video": torch.zeros(3, T, SIZE, SIZE), "input_ids": torch.tensor(ids), "study_id": s,
              "view": "4CH", "slice": 0} for s, ids in (("A", [2, 7, 3]), ("B", [2, 7, 8, 9, 3]))]
    batch = ClipCollate(pad_id=0)(items)
    assert batch["video"].shape == (2, 3, T, SIZE, SIZE)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 7, 8, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


@pytest.fixture(scope="module")
def studies(cohort, series):
    targets = load_targets(cohort.labels_csv, ["hcm", "lvef"])
    return StudyDataset(series, targets, ClipTransform(SPEC, False), seed=3)


def test_a_study_item_holds_all_its_views_in_order_with_targets(studies):
    i = studies.studies.index("S000")
    item = studies[i]
    assert item["video"].shape == (7, 3, T, SIZE, SIZE)
    assert item["views"] == ["4CH", "3CH", "2CH", "SAX", "SAX", "SAX", "SAX"]
    assert item["slices"].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert item["target"].tolist() == [1.0, 30.0] and item["patient_id"] == "P00"


def test_missing_views_and_short_series_follow_the_documented_rules(studies):
    missing = studies[studies.studies.index("S010")]  # no 3CH/2CH
    assert missing["views"] == ["4CH", "SAX", "SAX", "SAX", "SAX"]
    assert math.isnan(missing["target"][0].item())  # hcm uncertain -> NaN
    short = studies[studies.studies.index("S020")]  # 1-frame 4CH left out, 3-frame SAX repeated
    assert short["views"] == ["3CH", "2CH", "SAX", "SAX", "SAX"]
    assert short["video"].shape[2] == T


def test_lvef_keeps_all_lax_views_and_a_seeded_half_of_sax_slices(cohort, series):
    targets = load_targets(cohort.labels_csv, ["lvef"])
    ds = StudyDataset(series, targets, ClipTransform(SPEC, False), seed=3, sax_fraction=0.5)
    assert ds.exclusions["studies_without_target"] == 1 and "S080" not in ds.studies  # P08: no LVEF
    i = ds.studies.index("S000")
    first = ds[i]
    assert first["views"] == ["4CH", "3CH", "2CH", "SAX", "SAX"]
    assert torch.equal(first["slices"], ds[i]["slices"])  # evaluation: fixed per study
    drawn = {tuple(ds[(i, s)]["slices"].tolist()[3:]) for s in range(40)}
    assert len(drawn) > 3 and all(len(d) == 2 and list(d) == sorted(d) for d in drawn)


def test_study_batches_pad_views_and_mask_them(studies):
    items = [studies[studies.studies.index(s)] for s in ("S000", "S010", "S020")]
    batch = collate_studies(items)
    assert batch["video"].shape == (3, 7, 3, T, SIZE, SIZE)
    assert batch["mask"].tolist() == [[True] * 7, [True] * 5 + [False] * 2, [True] * 5 + [False] * 2]
    assert batch["views"][1][-2:] == ["", ""] and batch["slices"][1, -1] == -1
    assert torch.count_nonzero(batch["video"][1, 5:]) == 0
    assert batch["target"].shape == (3, 2) and torch.isnan(batch["target"][1, 0])
    assert batch["study_id"] == ["S000", "S010", "S020"]


def test_sax_fraction_must_be_a_fraction(cohort, series):
    with pytest.raises(ValueError, match="sax_fraction"):
        StudyDataset(series, load_targets(cohort.labels_csv, ["lvef"]), ClipTransform(SPEC, False),
                     seed=1, sax_fraction=0.0)
