"""The report's heat-map section: GIFs embedded per experiment, absent views named, absent outputs named."""

from __future__ import annotations

import re

from cinefm.report import build_report

TITLE = "<h2>Where the video encoder attends (attention heat maps)</h2>"


def _section(text: str) -> str:
    return text.split(TITLE)[1].split("</section>")[0]


def test_section_embeds_every_drawn_video_and_names_the_absent_views(results_with_videos, report_config, tmp_path):
    config = {**report_config, "attention": {"experiments": ["dcm_clip_transfer_100", "lvef_clip_transfer_100"],
                                             "blocks": [-1]}}
    section = _section(build_report(results_with_videos, tmp_path / "index.html", config).read_text())
    assert "<h3>Experiment dcm_clip_transfer_100</h3>" in section and "<h3>Experiment lvef_clip_transfer_100</h3>" in section
    gifs = re.findall(r'<img class="heat" alt="([^"]+)" src="data:image/gif;base64,', section)
    assert len(gifs) == 6  # 2 experiments x (2 x 4CH + 1 SAX)
    assert "S000000000003 · SAX" in gifs and "<code>attention/dcm_clip_transfer_100/videos/" in section
    assert section.count("study has no SAX series") == 2 and 'class="missing"' not in section


def test_configured_experiment_without_videos_is_named(results_with_videos, report_config, tmp_path):
    config = {**report_config, "attention": {"experiments": ["dcm_clip_transfer_100", "hcm_clip_transfer_100"],
                                             "blocks": [-1]}}
    section = _section(build_report(results_with_videos, tmp_path / "index.html", config).read_text())
    assert 'class="missing"' in section and "attention/hcm_clip_transfer_100/videos.csv" in section
    assert "run the <b>attention_videos</b> stage" in section
    assert section.count("data:image/gif;base64,") == 3


def test_run_without_attention_videos_says_so(full_results, report_config, tmp_path):
    section = _section(build_report(full_results, tmp_path / "index.html", report_config).read_text())
    assert "not part of this run" in section and "<img" not in section
