"""`cinefm leaderboard`: the tables it reads, its refusal without statistics, and the app in a real browser."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from cinefm.report.leaderboard import (
    ALL,
    NoStatistics,
    figures_for,
    filter_rows,
    load_tables,
    sort_default,
    videos_for,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CINEFM = [sys.executable, "-m", "cinefm.cli"]


def _tables(results: Path) -> dict:
    return {t.key: t for t in load_tables(results)}


def test_every_statistics_table_is_read_with_its_experiment_fields_and_cis(results_with_videos):
    echo = results_with_videos / "stats" / "echonet"
    echo.mkdir(exist_ok=True)
    pd.DataFrame({"experiment": ["echo_perceiver", "echo_r2plus1d"], "task": "lvef", "metric": "mae",
                  "value": [4.1, 4.6], "ci_low": [3.8, 4.2], "ci_high": [4.5, 5.0], "n": 120}).to_csv(
        echo / "regression.csv", index=False)
    tables = _tables(results_with_videos)
    assert {"internal/auroc", "internal/delong", "internal/thresholds", "internal/regression",
            "internal/lvef_subgroups", "internal/view_attention", "echonet/regression"} <= set(tables)
    auroc = tables["internal/auroc"].frame
    assert set(auroc["experiment"]) == {"dcm_clip_transfer_100", "dcm_kinetics_transfer_100",
                                        "lvef_clip_transfer_100"}
    row = auroc[auroc["experiment"] == "dcm_clip_transfer_100"].iloc[0]
    assert row["95 % CI"] == f"{row['ci_low']:.3f}–{row['ci_high']:.3f}" and row["cohort"] == "internal"
    regression = tables["internal/regression"].frame  # init/mode/fraction parsed from the experiment name
    assert set(regression[["init", "mode", "fraction"]].itertuples(index=False, name=None)) == {
        ("clip", "transfer", "100")}
    assert tables["echonet/regression"].frame["cohort"].eq("echonet").all()
    assert "external: echonet" in tables["echonet/regression"].title
    best_first = sort_default(tables["internal/auroc"], auroc)["auc"].tolist()
    assert best_first == sorted(best_first, reverse=True)
    shutil.rmtree(echo)


def test_filters_figures_and_videos_follow_the_rows(results_with_videos):
    t = _tables(results_with_videos)["internal/auroc"]
    dcm = filter_rows(t.frame, {"task": "dcm", "init": ALL, "cohort": "internal"})
    assert len(dcm) == 2 and len(filter_rows(t.frame, {"init": "kinetics"})) == 1
    assert [p.name for p in figures_for(results_with_videos, t, dcm)] == ["roc_dcm_transfer_100.png"]
    lvef = filter_rows(t.frame, {"task": "heart_failure"})
    assert [p.name for p in figures_for(results_with_videos, t, lvef)] == [
        "bland_altman_lvef_clip_transfer_100.png", "roc_heart_failure_transfer_100.png"]
    vids = videos_for(results_with_videos, ["dcm_clip_transfer_100", "dcm_kinetics_transfer_100"])
    assert len(vids) == 3 and vids["url_mp4"].str.startswith("attention/dcm_clip_transfer_100/videos/").all()


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_refuses_to_start_without_statistics(tmp_path, make):
    results = tmp_path / "results"
    if make == "empty":
        (results / "stats").mkdir(parents=True)
    with pytest.raises(NoStatistics, match="run the stats stage first" if make == "empty" else "not found"):
        load_tables(results)
    if make == "missing":
        return
    proc = subprocess.run([*CINEFM, "leaderboard", "--results", str(results), "--port", str(_free_port())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "cinefm leaderboard:" in proc.stderr and str(results) in proc.stderr
    assert "run the stats stage first" in proc.stderr and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}): {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def server(results_with_videos):
    """`cinefm leaderboard` on a free local port, stopped (and checked stopped) after the test."""
    port = _free_port()
    proc = subprocess.Popen([*CINEFM, "leaderboard", "--results", str(results_with_videos), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_app_renders_the_runs_results_in_headless_chromium(server, results_with_videos, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, proc = server
    auroc = _tables(results_with_videos)["internal/auroc"].frame  # as the app shows it (4 decimals)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url)
        rows = page.locator("#grid tbody tr")
        rows.first.wait_for(timeout=30000)
        assert rows.count() == 3
        text = page.locator("#grid").inner_text()
        for rec in auroc.to_dict("records"):  # every experiment, its AUROC and CI as rendered by the grid
            assert rec["experiment"] in text
            assert f"\t{rec['auc']}\t{rec['95 % CI']}\t" in text
            assert rec["95 % CI"] == f"{rec['ci_low']:.3f}–{rec['ci_high']:.3f}"
        assert "3 of 3 rows" in page.inner_text("#row-count")
        # the ROC figures of the rows shown load from the server
        page.wait_for_function("document.querySelectorAll('.lb-figs img').length >= 2 && "
                               "[...document.querySelectorAll('.lb-figs img')].every(i => i.complete && i.naturalWidth > 0)")
        # a filter changes the rows (and the figures and videos that follow them)
        page.select_option("#task", "dcm")
        page.wait_for_function("document.querySelector('#row-count').innerText.startsWith('2 of 3')")
        assert rows.count() == 2 and "lvef_clip_transfer_100" not in page.locator("#grid").inner_text()
        page.wait_for_function("document.querySelectorAll('.lb-videos a[href$=\".mp4\"]').length === 6")
        href = page.locator(".lb-videos a[href$='.mp4']").first.get_attribute("href")
        with urllib.request.urlopen(url + href, timeout=10) as r:
            assert r.status == 200 and r.read(12)[4:8] == b"ftyp"  # an MP4 served as is
        page.wait_for_function("[...document.querySelectorAll('.lb-videos img')].every(i => i.naturalWidth > 0)")
        shot = tmp_path / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    assert f"http://127.0.0.1:{url.rsplit(':', 1)[1]}" in proc.stdout.readline()
