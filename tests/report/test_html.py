"""The static report: sections, embedded figures, absent-input notices, rendering in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cinefm.report import build_report

HEADINGS = [
    "Exclusion flow", "Label agreement", "Pre-training", "Discrimination (AUROC and ROC curves)",
    "Pre-trained vs baseline (DeLong tests)", "Operating points", "LVEF regression",
    "LVEF error by disease subgroup", "Multi-view attention per view plane",
    "Bland–Altman agreement (predicted vs reference LVEF)",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(full_results, report_config, tmp_path_factory) -> Path:
    return build_report(full_results, tmp_path_factory.mktemp("report") / "index.html", report_config)


def test_page_is_self_contained_with_every_section(page):
    text = page.read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in text
    assert 'class="missing"' not in text
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(srcs) == 8  # flow, agreement, umap, ROC dcm, ROC heart failure, LVEF subgroups, view attention,
    # Bland–Altman
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|file:|//)', text)  # nothing fetched from elsewhere
    assert "0.8" in text and "p (DeLong)" in text and "Youden-optimal" in text
    subgroups = text.split("<h2>LVEF error by disease subgroup</h2>")[1].split("</section>")[0]
    assert "Hypertrophic cardiomyopathy + Dilated cardiomyopathy" in subgroups
    assert "no training study" in subgroups and "None of the diseases" in subgroups
    attention = text.split("<h2>Multi-view attention per view plane</h2>")[1].split("</section>")[0]
    assert "lvef_clip_transfer_100" in attention and "<th>SAX</th>" in attention


def test_absent_inputs_are_named_in_their_section(tmp_path, report_config):
    (tmp_path / "stats").mkdir()
    page = build_report(tmp_path, tmp_path / "report" / "index.html", report_config)
    text = page.read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in text
    assert text.count('class="missing"') == len(HEADINGS)
    assert "ingest/flow.csv" in text and "run the <b>ingest</b> stage" in text
    assert "stats/delong.csv" in text and "pretrain/phantom/umap.png" in text


def test_a_run_without_lvef_experiments_says_so(full_results, tmp_path, report_config):
    from cinefm.stats import write_stats

    preds = sorted((full_results / "finetune").glob("dcm_*/predictions.csv"))
    write_stats(preds, tmp_path / "stats", report_config)
    text = build_report(tmp_path, tmp_path / "index.html", report_config).read_text()
    regression = text.split("<h2>LVEF regression</h2>")[1].split("</section>")[0]
    assert "This run produced no rows for this table." in regression
    assert "This run has no LVEF regression experiment." in text
    assert "hcm" not in regression and "dcm_clip_transfer_100" in text


def test_unreadable_input_is_named_without_breaking_the_page(tmp_path, report_config):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "agreement.csv").write_text("")
    text = build_report(tmp_path, tmp_path / "index.html", report_config).read_text()
    assert "Could not read" in text and "agreement.csv" in text and "<h2>LVEF regression</h2>" in text


def test_missing_results_folder_is_a_clear_error(tmp_path, report_config):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        build_report(tmp_path / "nope", tmp_path / "index.html", report_config)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_page_renders_in_headless_chromium_with_no_broken_image(page, tmp_path):
    res = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in dom
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == 8
    assert 'data-broken-images="0"' in dom  # set by the page's load handler after decoding every image

    shot = tmp_path / "shot.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1200)
    assert img.std() > 0.05  # not a blank page
    header = img[5:60, 100:1100]  # the dark blue title bar
    assert np.abs(header.mean(axis=(0, 1)) - np.array([0x12, 0x35, 0x5B]) / 255).max() < 0.15


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_a_corrupt_figure_is_flagged_by_the_page(full_results, report_config, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(full_results, results)
    (results / "pretrain" / "phantom" / "umap.png").write_bytes(b"not a png")
    page = build_report(results, tmp_path / "index.html", report_config)
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-broken-images="1"' in dom and "1 figure(s) failed to load." in dom


def test_settings_section_lists_each_departure_from_the_method(full_results, tmp_path):
    from cinefm.config import PAPER_CONFIG, deep_merge, load_config

    paper = load_config(PAPER_CONFIG)
    same = build_report(full_results, tmp_path / "same.html", paper).read_text()
    section = same.split("<h2>Settings that differ from the method</h2>")[1].split("</section>")[0]
    assert "0 settings of this run differ" in section and "<table" not in section
    changed = deep_merge(paper, {"finetune": {"disease": {"epochs": 3, "view_loss_weight": 2.0}},
                                 "phantom": {"sax_slices": [8, 10]}, "models": {"video": {"weights": None}}})
    text = build_report(full_results, tmp_path / "changed.html", {**changed, "echonet": False}).read_text()
    section = text.split("<h2>Settings that differ from the method</h2>")[1].split("</section>")[0]
    assert "4 settings of this run differ" in section
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", section)
    assert rows == [("finetune.disease.epochs", "3", "24"), ("finetune.disease.view_loss_weight", "2.0", "0.0"),
                    ("models.video.weights", "null", "/path/to/mvit_v1_b-dbeb1030.pth"),
                    ("phantom.sax_slices", "[8, 10]", "[8, 12]")]
