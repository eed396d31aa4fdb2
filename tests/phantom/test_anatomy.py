"""The heart model's volumes, motion and rendering shortcuts, on small arrays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cinefm.phantom.anatomy import (
    Heart,
    Tissue,
    contraction,
    ejection_fraction,
    heart_labels,
    heart_points,
    lv_volume_ml,
    solve_radial_es,
)
from cinefm.phantom.diseases import DISEASES, sample_patient_heart, study_heart
from cinefm.phantom.geometry import PlaneScene, lax_plane, make_body, place_heart, sax_planes


def test_lv_volume_is_the_half_ellipsoid_volume():
    h = Heart(r_endo_ed=25.0, length_ed=90.0, wall_ed=9.0)
    assert lv_volume_ml(h, 0.0) == pytest.approx(2 / 3 * np.pi * 25**2 * 90 / 1000, rel=2e-3)


def test_contraction_runs_from_end_diastole_to_end_systole_and_back():
    t = np.arange(40) / 40
    c = contraction(t, 0.35)
    assert c[0] == 0 and c.max() == pytest.approx(1, abs=0.01)
    assert abs(t[np.argmax(c)] - 0.35) <= 1 / 40
    assert c[-1] < 0.1


@pytest.mark.parametrize("target", [20.0, 45.0, 62.0, 75.0])
def test_solved_geometry_gives_the_target_lvef(target):
    h = solve_radial_es(Heart(r_endo_ed=26.0, length_ed=92.0, wall_ed=9.0, base_descent=0.08), target)
    ef, edv, esv = ejection_fraction(h)
    assert ef == pytest.approx(target, abs=0.05)
    assert edv > esv > 0


def test_an_akinetic_infarct_lowers_lvef_at_the_same_contraction():
    h = Heart(r_endo_ed=26.0, length_ed=92.0, wall_ed=9.0)
    mi = dataclasses.replace(h, mi_angle=0.5, mi_width=1.6, mi_start=0.3)
    assert ejection_fraction(mi)[0] < ejection_fraction(h)[0] - 3


def test_diseases_change_the_drawn_heart():
    rng = np.random.default_rng(0)
    hearts = {}
    for d in ("", *DISEASES):
        ds = frozenset({d} - {""})
        base = sample_patient_heart(ds, rng, male=True)
        hearts[d] = (study_heart(base, ds, 0.3, rng), base)
    (normal, ef_n, edv_n, _), _ = hearts[""]
    assert hearts["dcm"][0][2] > edv_n * 1.4 and hearts["dcm"][0][1] < 40
    assert hearts["hcm"][0][0].wall_ed + hearts["hcm"][0][0].septal_extra > normal.wall_ed + 6
    assert hearts["amyloidosis"][0][0].wall_ed > normal.wall_ed + 3
    assert hearts["rv_dilation"][0][0].rv_scale > 1.4 > normal.rv_scale
    assert hearts["pericardial_effusion"][0][0].effusion_mm > 5 and normal.effusion_mm == 0
    assert hearts["prior_mi"][0][0].mi_angle is not None and normal.mi_angle is None


def test_region_of_interest_shortcut_draws_the_same_labels_as_the_full_plane():
    rng = np.random.default_rng(1)
    for ds in (frozenset({"dcm", "rv_dilation", "pericardial_effusion"}), frozenset({"hcm", "prior_mi"})):
        base = sample_patient_heart(ds, rng, male=True)
        place = place_heart(rng)
        heart, *_ = study_heart(base, ds, 0.3, rng)
        body = make_body(place, rng)
        planes = sax_planes(place, heart, 9, 96, 96, 3.0, 8.0, rng) + [lax_plane(place, heart, "4CH", 96, 96, 3.0, 8.0, rng)]
        for plane in planes:
            scene = PlaneScene(heart, place, body, plane)
            uvw = place.to_heart(plane.points()).reshape(-1, 3)
            full = heart_points(heart, uvw[:, 0], uvw[:, 1], uvw[:, 2])
            for c in (0.0, 1.0):
                lab = heart_labels(heart, full, c)
                want = scene.static.ravel().copy()
                want[lab > 0] = lab[lab > 0]
                assert (scene.labels(c).ravel() == want).all()
        sax_mid = PlaneScene(heart, place, body, planes[4]).labels(0.0)
        assert (sax_mid == Tissue.LV_BLOOD).any() and (sax_mid == Tissue.RV_BLOOD).any()
        if "pericardial_effusion" in ds:
            assert (sax_mid == Tissue.EFFUSION).any()
