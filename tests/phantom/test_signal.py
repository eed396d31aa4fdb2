"""The phantom carries a learnable signal, measured from the DICOM pixels alone.

Statistic: the LV blood pool of the mid-ventricular SAX slice (the bright connected
component nearest the image centre after light smoothing) at end-diastole (first frame) and at its smallest
(end-systole). Its fractional area change tracks LVEF; its ED area in mm^2 flags DCM.
"""

from __future__ import annotations

import collections

import numpy as np
import pydicom
from scipy import ndimage
from sklearn.metrics import roc_auc_score


def _blood_area(img: np.ndarray, threshold: float, spacing: float) -> int:
    """Pixels of the bright blob nearest the centre, within 60 mm of it (smoothed first)."""
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    near = np.hypot(yy - (img.shape[0] - 1) / 2, xx - (img.shape[1] - 1) / 2) * spacing < 60
    lab, n = ndimage.label((ndimage.gaussian_filter(img, 1.0) > threshold) & near)
    if n == 0:
        return 0
    cy, cx = (np.array(img.shape) - 1) / 2
    best, best_d = 0, np.inf
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        ys, xs = np.nonzero(lab[sl] == k)
        if len(ys) < 4:
            continue
        d = np.min(np.hypot(ys + sl[0].start - cy, xs + sl[1].start - cx))
        if d < best_d:
            best, best_d = len(ys), d
    return best


def _mid_sax_frames(dss) -> tuple[np.ndarray, float]:
    """(frames, rows, cols) of the middle SAX slice ordered by trigger time, and pixel spacing."""
    if len(dss) == 1 and int(getattr(dss[0], "NumberOfFrames", 1) or 1) > 1:
        ds = dss[0]
        pf = ds.PerFrameFunctionalGroupsSequence
        stack = [int(it.FrameContentSequence[0].InStackPositionNumber) for it in pf]
        trig = [float(it.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime) for it in pf]
        mid = sorted(set(stack))[len(set(stack)) // 2]
        idx = sorted((t, i) for i, (s, t) in enumerate(zip(stack, trig, strict=True)) if s == mid)
        spacing = float(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0])
        return ds.pixel_array[[i for _, i in idx]].astype(float), spacing
    locs = sorted({round(float(d.SliceLocation), 2) for d in dss})
    mid = locs[len(locs) // 2]
    same = sorted((d for d in dss if round(float(d.SliceLocation), 2) == mid), key=lambda d: float(d.TriggerTime))
    return np.stack([d.pixel_array.astype(float) for d in same]), float(same[0].PixelSpacing[0])


def _study_stats(cohort) -> dict[str, tuple[float, float]]:
    """accession -> (fractional area change, ED blood area mm^2) from the SAX cine pixels."""
    sax = collections.defaultdict(list)
    for f, hdr in cohort.headers.items():
        if "SAX" in hdr.SeriesDescription:
            sax[hdr.AccessionNumber].append(pydicom.dcmread(f))
    out = {}
    for acc, dss in sax.items():
        frames, spacing = _mid_sax_frames(dss)
        threshold = 0.6 * np.percentile(frames[0], 99)
        areas = [_blood_area(f, threshold, spacing) for f in frames]
        out[acc] = (1 - min(areas) / areas[0], areas[0] * spacing**2)
    return out


def test_sax_area_change_correlates_with_true_lvef_and_ed_area_flags_dcm(cohort):
    stats = _study_stats(cohort)
    t = cohort.truth.set_index("accession_number")
    assert set(stats) == set(t.index)
    accs = sorted(stats)
    fac = np.array([stats[a][0] for a in accs])
    ed_area = np.array([stats[a][1] for a in accs])
    lvef = t.loc[accs, "lvef"].astype(float).to_numpy()
    r = np.corrcoef(fac, lvef)[0, 1]
    assert r > 0.5, f"Pearson r(FAC, LVEF) = {r:.2f}"
    dcm = t.loc[accs, "dcm"].astype(int).to_numpy()
    auc = roc_auc_score(dcm, ed_area)
    assert auc > 0.8, f"AUROC(ED area -> DCM) = {auc:.2f}"
