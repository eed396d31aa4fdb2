"""A single self-contained static HTML page showing the whole run.

``build_report(results_dir, out_html, config)`` renders every section whose inputs
exist under ``results_dir`` and says, in the section, which file is absent and
which stage makes it. Figures are embedded as base64 ``data:`` URIs, styles are
inline, and nothing is fetched from the network, so the page can be mailed or
archived as one file. A small inline script counts images that failed to decode
(``<body data-broken-images=N>``) and shows a warning when N > 0.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from cinefm.atomic import write_text
from cinefm.config import PAPER_CONFIG, ConfigError, differences, flatten, validate_config
from cinefm.report import tables

log = logging.getLogger(__name__)

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#12355b;color:#fff;padding:18px 32px}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;opacity:.85}main{max-width:1150px;margin:0 auto;padding:8px 32px 48px}
nav{margin:16px 0;font-size:14px}nav a{margin-right:14px;color:#12355b}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:12px 20px;margin:18px 0}
h2{font-size:19px;color:#12355b;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}
p.missing{color:#8a4b00;background:#fff6e5;border-left:4px solid #f0a030;padding:8px 12px}
p.lead{color:#555;font-size:14px}figure{display:inline-block;margin:8px 12px 8px 0;vertical-align:top}
figure img{max-width:520px;border:1px solid #eee}figcaption{font-size:12px;color:#555}
table.data{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
table.data th{background:#eef2f7;text-align:left;padding:4px 8px;border-bottom:1px solid #ccd}
table.data td{padding:3px 8px;border-bottom:1px solid #eee}#broken{display:none;color:#b00020}
figure img.heat{width:192px;max-width:192px;image-rendering:pixelated}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var bad = Array.prototype.filter.call(document.images, function (i) {
    return !(i.complete && i.naturalWidth > 0); }).length;
  document.body.setAttribute('data-broken-images', String(bad));
  if (bad > 0) { var w = document.getElementById('broken');
    w.textContent = bad + ' figure(s) failed to load.'; w.style.display = 'block'; }
});
"""


@dataclass(frozen=True)
class Section:
    """One section of the page: an anchor id, a heading and its HTML body."""

    anchor: str
    title: str
    body: str


def image_html(path: Path, caption: str, mime: str = "image/png", css_class: str = "") -> str:
    """``<figure>`` with the image (PNG unless ``mime`` says otherwise) embedded as a base64 data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = html.escape(caption)
    cls = f' class="{css_class}"' if css_class else ""
    return (f'<figure><img{cls} alt="{cap}" src="data:{mime};base64,{data}">'
            f"<figcaption>{cap}</figcaption></figure>")


def missing_html(results: Path, relpaths: list[str], stage: str) -> str:
    """The notice shown instead of a section whose inputs are absent."""
    files = ", ".join(f"<code>{html.escape(str(results / r))}</code>" for r in relpaths)
    return (f'<p class="missing">Not available: {files} not found — '
            f"run the <b>{html.escape(stage)}</b> stage to produce it.</p>")


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def _section_parts(results: Path, parts: list[tuple[str, str, Callable[[Path], str]]], stage: str) -> str:
    """Render each (relpath, subtitle, renderer) that exists; one notice listing the absent ones."""
    body, absent = [], []
    for rel, subtitle, render in parts:
        path = results / rel
        if not path.is_file():
            absent.append(rel)
            continue
        head = f"<h3>{html.escape(subtitle)}</h3>" if subtitle else ""
        try:
            body.append(head + render(path))
        except (pd.errors.EmptyDataError, pd.errors.ParserError, KeyError, ValueError) as err:
            log.warning("report: cannot render %s: %s", path, err)
            body.append(f'<p class="missing">Could not read <code>{html.escape(str(path))}</code>: '
                        f"{html.escape(str(err))} — re-run the <b>{html.escape(stage)}</b> stage.</p>")
    if absent:
        body.append(missing_html(results, absent, stage))
    return "\n".join(body)


def flow_section(results: Path, config: dict) -> Section:
    body = _section_parts(results, [
        ("ingest/flow.png", "", lambda p: image_html(p, "Exclusion flow: files → series → studies → patients")),
        ("ingest/flow.csv", "Counts at every step", lambda p: tables.table_html(_csv(p), 0)),
    ], "ingest")
    return Section("flow", "Exclusion flow", body)


def _labels_provenance(df: pd.DataFrame) -> str:
    """One line naming the backend, model and cue set that produced the labels."""
    cols = [c for c in ("backend", "model", "cue_set") if c in df]
    parts = [f"{c.replace('_', ' ')} <code>{html.escape(v)}</code>" for c in cols
             for v in [";".join(sorted({str(x) for x in df[c].dropna()} - {""}))] if v]
    return f'<p class="lead">Labels by {", ".join(parts)}.</p>' if parts else ""
EXTERNAL_COHORT_NAMES = {"ukb": "UK Biobank", "acdc": "ACDC", "kaggle": "Kaggle Data Science Bowl",
                         "echonet": "EchoNet-Dynamic"}


def external_flow_section(results: Path, config: dict) -> Section:
    """Exclusion flow of each external cohort converted in this run (``external/{cohort}/flow.csv``)."""
    title = "External cohorts: exclusion flow"
    enabled = [c for c in ("ukb", "acdc", "kaggle")
               if ((config.get("external") or {}).get(c) or {}).get("enabled")]
    present = [c for c in EXTERNAL_COHORT_NAMES if (results / "external" / c / "flow.csv").is_file()]
    cohorts = list(dict.fromkeys(enabled + present))
    sites = list(dict.fromkeys([*((config.get("external") or {}).get("sites") or {}),
                                *sorted(p.parent.parent.name for p in (results / "sites").glob("*/ingest/flow.csv"))]))
    if not cohorts and not sites:
        return Section("external", title, '<p class="lead">No external cohort is part of this run (config '
                       "external.&lt;cohort&gt;.enabled).</p>")
    lead = ('<p class="lead">Each cohort as its owner distributes it: counts of source units (zips, patient or '
            "study folders, CSV rows), DICOM series, studies and patients kept, and every exclusion with its "
            "reason code (<code>files.csv</code> and <code>series.csv</code> beside each table hold one row per "
            "unit and series).</p>")
    body = _section_parts(results, [
        (f"external/{c}/flow.csv", EXTERNAL_COHORT_NAMES[c], lambda p: tables.table_html(_csv(p), 0))
        for c in cohorts] + [  # second DICOM sites: the main cohort's ingestion flow (sites.smk)
        (f"sites/{s}/ingest/flow.csv", f"Site {s} (DICOM export, test only)", lambda p: tables.table_html(_csv(p), 0))
        for s in sites], "external")
    return Section("external", title, lead + body)


def labels_section(results: Path, config: dict) -> Section:
    body = _section_parts(results, [
        ("labels/agreement.csv", "Automatic labels against human annotators, per disease",
         lambda p: _labels_provenance(_csv(p)) + tables.table_html(_csv(p))),
        ("labels/agreement.png", "", lambda p: image_html(p, "Agreement with human annotators")),
    ], "labels")
    return Section("labels", "Label agreement", body)


def pretrain_section(results: Path, config: dict) -> Section:
    run = (config.get("pretrain") or {}).get("run")
    runs = [run] if run and (results / "pretrain" / run).is_dir() else sorted(
        p.name for p in (results / "pretrain").glob("*") if p.is_dir())
    if not runs:
        rel = f"pretrain/{run or '<run>'}"
        return Section("pretrain", "Pre-training", missing_html(results, [f"{rel}/umap.png", f"{rel}/retrieval.csv"],
                                                                "pretrain"))
    body = []
    for r in runs:
        body.append(f"<h3>Run {html.escape(r)}</h3>" + _section_parts(results, [
            (f"pretrain/{r}/umap.png", "", lambda p: image_html(p, "UMAP of the video embeddings")),
            (f"pretrain/{r}/retrieval.csv", "Video ↔ report retrieval", lambda p: tables.table_html(_csv(p))),
            (f"pretrain/{r}/structure.csv", "Disease structure of the embeddings (k-NN vote AUROC against "
             "label permutations: read auroc against null_mean)", lambda p: tables.table_html(_csv(p))),
        ], "pretrain"))
    return Section("pretrain", "Pre-training", "\n".join(body))


def _figures(results: Path, pattern: str, caption: Callable[[str], str]) -> str:
    # stats/figures/ as the workflow writes them (figures of older runs in stats/ are ignored then);
    # stats/ itself as `cinefm stats --out` writes them
    folder = results / "stats" / "figures"
    paths = sorted((folder if folder.is_dir() else results / "stats").glob(pattern))
    return "\n".join(image_html(p, caption(p.stem)) for p in paths)


def auroc_section(results: Path, config: dict) -> Section:
    lead = ('<p class="lead">AUROC with DeLong confidence intervals (DeLong et al., Biometrics 1988), '
            "computed as R pROC; shaded bands are stratified bootstrap CIs of sensitivity.</p>")
    body = _section_parts(results, [
        ("stats/auroc.csv", "", lambda p: tables.table_html(tables.auroc_display(_csv(p)))),
    ], "stats")
    figs = _figures(results, "roc_*.png", lambda s: "ROC: " + s.removeprefix("roc_").replace("_", " "))
    return Section("auroc", "Discrimination (AUROC and ROC curves)", lead + body + figs)


def delong_section(results: Path, config: dict) -> Section:
    lead = ('<p class="lead">Pre-trained against baseline initialisation on the same test studies: '
            "paired DeLong test (two-sided) and the CI of the AUROC difference.</p>")
    body = _section_parts(results, [
        ("stats/delong.csv", "", lambda p: tables.table_html(tables.delong_display(_csv(p)))),
    ], "stats")
    return Section("delong", "Pre-trained vs baseline (DeLong tests)", lead + body)


def thresholds_section(results: Path, config: dict) -> Section:
    body = _section_parts(results, [
        ("stats/thresholds.csv", "", lambda p: tables.table_html(tables.thresholds_display(_csv(p)))),
    ], "stats")
    return Section("thresholds", "Operating points", body)


def regression_section(results: Path, config: dict) -> Section:
    body = _section_parts(results, [
        ("stats/regression.csv", "", lambda p: tables.table_html(tables.regression_display(_csv(p)))),
    ], "stats")
    return Section("regression", "LVEF regression", body + _mean_predictor_html(results))


def _mean_predictor_html(results: Path) -> str:
    """The reference an LVEF model must beat: the MAE of always predicting the training mean."""
    frames = [_csv(p) for p in sorted((results / "finetune").glob("*/metrics.csv"))]
    table = tables.mean_predictor_display(pd.concat(frames)) if frames else pd.DataFrame()
    if table.empty:
        return ""
    return ('<p class="lead">Test MAE against the MAE of predicting the mean LVEF of the training '
            "studies for every test study (ratio below 1: the model beats it).</p>" + tables.table_html(table))


def _stats_table_section(results: Path, anchor: str, title: str, lead: str, name: str,
                         display: Callable[[pd.DataFrame], pd.DataFrame]) -> Section:
    """A section of one ``stats/<name>.csv`` table (shown through ``display``) and its ``figures/<name>.png``."""
    body = _section_parts(results, [
        (f"stats/{name}.csv", "", lambda p: tables.table_html(display(_csv(p)))),
    ], "stats")
    figs = _figures(results, f"{name}.png", lambda s: title)
    return Section(anchor, title, f'<p class="lead">{lead}</p>' + body + figs)


def subgroups_section(results: Path, config: dict) -> Section:
    """LVEF test error by disease subgroup, with the training studies each subgroup had."""
    lead = ("Where the LVEF models are wrong: test error by disease label and by pair of labels seen "
            "together, next to the number of training studies in the same subgroup. A subgroup without "
            "training studies shows how a model extrapolates to a phenotype it never saw.")
    return _stats_table_section(results, "lvef-subgroups", "LVEF error by disease subgroup", lead,
                                "lvef_subgroups", tables.subgroups_display)


def view_attention_section(results: Path, config: dict) -> Section:
    """Which view planes each model (and, with per-disease attention, each disease) reads."""
    lead = ("Mean share of the multi-view attention that each view plane received on the test studies. "
            "With per-disease attention each disease weighs the views on its own; in brackets, the share "
            "minus the mean over the model's tasks. A SAX stack has many slices and a long-axis view one, "
            "so compare tasks within a column.")
    return _stats_table_section(results, "view-attention", "Multi-view attention per view plane", lead,
                                "view_attention", tables.view_attention_display)


def bland_altman_section(results: Path, config: dict) -> Section:
    figs = _figures(results, "bland_altman_*.png", lambda s: "Bland–Altman: " + s.removeprefix("bland_altman_"))
    if figs:
        body = figs
    elif (results / "stats" / "regression.csv").is_file():  # stats ran: no LVEF experiment in this run
        body = '<p class="lead">This run has no LVEF regression experiment.</p>'
    else:
        body = missing_html(results, ["stats/figures/bland_altman_<experiment>.png"], "stats")
    return Section("bland-altman", "Bland–Altman agreement (predicted vs reference LVEF)", body)


def echo_section(results: Path, config: dict) -> Section:
    """EchoNet-Dynamic EF: each encoder's regression/HFrEF metrics and their paired comparison (stats/echonet/)."""
    title = "Echocardiography: EF on EchoNet-Dynamic (Perceiver IO vs R(2+1)D)"
    folder = results / "stats" / "echonet"
    if not config.get("echonet") and not folder.is_dir():
        return Section("echo", title, '<p class="lead">EchoNet-Dynamic is not part of this run (config '
                       "external.echonet.root, or external.echonet.phantom.enabled for the synthetic release).</p>")
    lead = ('<p class="lead">EF regression on the release\'s TEST videos: MAE, RMSE, R² (bootstrap CIs), '
            "Bland–Altman, the MAE of predicting the training mean, HFrEF (EF &lt; 40 %) AUROC (DeLong CI) and its "
            "operating points (chosen on the VAL videos, applied to TEST); "
            "paired comparison of absolute errors per video (Wilcoxon signed-rank test, bootstrap CI of the "
            "MAE difference A − B; negative: A is closer to the reference).</p>")
    body = _section_parts(results, [
        ("stats/echonet/comparison.csv", "Paired comparison of absolute errors",
         lambda p: tables.table_html(tables.echo_comparison_display(_csv(p)))),
        ("stats/echonet/regression.csv", "EF regression",
         lambda p: tables.table_html(tables.regression_display(_csv(p)))),
        ("stats/echonet/auroc.csv", "HFrEF detection from the predicted EF",
         lambda p: tables.table_html(tables.auroc_display(_csv(p)))),
        ("stats/echonet/thresholds.csv", "HFrEF operating points (chosen on VAL, applied to TEST)",
         lambda p: tables.table_html(tables.thresholds_display(_csv(p)))),
    ], "echonet_stats")
    figs = "\n".join(image_html(p, p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png")))
    return Section("echo", title, lead + body + figs)


def _attention_videos_html(table_path: Path) -> str:
    """The GIFs of one experiment's ``videos.csv`` (:mod:`cinefm.viz.videos`), and its absent views."""
    table = pd.read_csv(table_path, dtype={"study_id": str}, keep_default_na=False)
    missing = {"study_id", "view", "status", "reason", "gif"} - set(table.columns)
    if missing:
        raise KeyError(f"columns {sorted(missing)}")
    folder = table_path.parent
    figs = []
    for rec in table[table["status"] == "ok"].itertuples():
        gif = folder / rec.gif
        if not gif.is_file():
            raise ValueError(f"{gif} listed in videos.csv is missing")
        figs.append(image_html(gif, f"{rec.study_id} · {rec.view}", mime="image/gif", css_class="heat"))
    absent = table[table["status"] != "ok"]
    notes = "".join(f"<li>{html.escape(r.study_id)} · {html.escape(r.view)}: {html.escape(r.reason)}</li>"
                    for r in absent.itertuples())
    where = (f'<p class="lead">MP4 and poster of each: <code>attention/{html.escape(folder.name)}/videos/'
             "&lt;study&gt;_&lt;view&gt;.mp4</code> / <code>.png</code>.</p>")
    return "\n".join(figs) + where + (f'<p class="lead">Not drawn:</p><ul>{notes}</ul>' if notes else "")


def attention_section(results: Path, config: dict) -> Section:
    """Heat-map videos of the fine-tuned encoders' self-attention (``attention/<experiment>/``)."""
    title = "Where the video encoder attends (attention heat maps)"
    section = config.get("attention") or {}
    folder = results / "attention"
    chosen = section.get("experiments")
    if not section and not folder.is_dir():
        return Section("attention", title, '<p class="lead">Attention heat-map videos are not part of this run '
                       "(config attention.experiments).</p>")
    names = list(chosen) if chosen is not None else sorted(p.parent.name for p in folder.glob("*/videos.csv"))
    blocks = section.get("blocks", [-1])
    lead = ('<p class="lead">The class token\'s self-attention to the patch tokens in MViT block(s) '
            f"{html.escape(str(blocks))} (-1 = the last), averaged over heads, resampled to the clip by nearest "
            "neighbour and overlaid on the grey clip of test studies (brighter = more attention, scaled per "
            "video). Loops at the model's input size; the MP4 beside each is larger.</p>")
    if not names:
        return Section("attention", title, lead + missing_html(results, ["attention/<experiment>/videos.csv"],
                                                               "attention_videos"))
    body = _section_parts(results, [(f"attention/{n}/videos.csv", f"Experiment {n}",
                                     _attention_videos_html) for n in names],
                          "attention_videos")
    return Section("attention", title, lead + body)


def settings_section(results: Path, config: dict) -> Section:
    """Every setting of this run that differs from the method's defaults (``config/paper.yaml``)."""
    title = "Settings that differ from the method"
    try:
        paper = yaml.safe_load(PAPER_CONFIG.read_text())
        validate_config(paper)  # the method's values with the schema's defaults, as a run's config holds them
    except (OSError, yaml.YAMLError, ConfigError) as err:
        return Section("settings", title, f'<p class="missing">Could not read the method\'s defaults '
                       f"<code>{html.escape(str(PAPER_CONFIG))}</code>: {html.escape(str(err))}</p>")
    # only the method's sections: entries the workflow adds to a run's config are not settings
    rows = differences({k: v for k, v in config.items() if k in paper}, paper)
    n_compared = len(flatten(paper))
    lead = (f'<p class="lead">{len(rows)} settings of this run differ from the method\'s defaults '
            f"(<code>config/paper.yaml</code>, {n_compared} settings): site paths and resources, a recipe "
            "scaled to the cohort (the demo's is scaled to a CPU), or a "
            "departure chosen for it. The numbers above are the method's only as far as these rows allow; "
            "<code>config/config.yaml</code> says why each demo value was chosen.</p>")
    if not rows:
        return Section("settings", title, lead)
    body = (f"<details><summary>Show the {len(rows)} settings</summary>"
            f"{tables.table_html(tables.settings_display(rows))}</details>")
    return Section("settings", title, lead + body)


def external_validation_section(results: Path, config: dict) -> Section:
    """Every trained model on every external cohort's test units (``stats/external*.csv``, figures per cohort)."""
    title = "External validation"
    folder = results / "stats" / "external_figures"
    if not (results / "stats" / "external.csv").is_file() and not (config.get("external") or {}).get("evaluate"):
        return Section("external-validation", title, '<p class="lead">No external test in this run (config '
                       "external.evaluate and external.&lt;cohort&gt;.enabled).</p>")
    lead = ('<p class="lead">Each fine-tuned model, selected on its own validation split, tested without retraining '
            "on the test units of each external cohort: ACDC (disease groups against NOR and the other groups; "
            "LVEF from the expert masks), the Kaggle Data Science Bowl (LVEF from the expert volumes) and further "
            "hospital sites. AUROC with DeLong CIs, LVEF errors with bootstrap CIs, Bland–Altman bias and limits "
            "(predicted − reference); heart failure = reference LVEF below "
            f"{html.escape(str((config.get('labels') or {}).get('heart_failure_lvef', 40)))} %.</p>")
    body = _section_parts(results, [
        ("stats/external.csv", "", lambda p: tables.table_html(tables.external_display(_csv(p)))),
        ("stats/external_delong.csv", "Pre-trained vs baseline per cohort (paired DeLong tests)",
         lambda p: tables.table_html(tables.external_delong_display(_csv(p)))),
    ], "external_stats")
    figs = []
    for cohort in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        images = "\n".join(image_html(p, p.stem.replace("_", " ")) for p in sorted(cohort.glob("*.png")))
        figs.append(f"<h3>{html.escape(cohort.name)}</h3>{images}")
    return Section("external-validation", title, lead + body + "\n".join(figs))


def repro_section(results: Path, config: dict) -> Section:
    """``repro/report.csv`` of ``cinefm repro``: each rerun output, identical or how it differs."""
    path = results / "repro" / "report.csv"
    lead = ('<p class="lead">Outputs rerun by <code>cinefm repro</code> in a scratch folder and compared with '
            "this run: byte for byte (sha256) for every non-training rule, the tables of the training rules "
            "number by number within a tolerance.</p>")
    if not path.is_file():
        return Section("repro", "Reproducibility", lead + '<p>Not checked yet: '
                       "<code>cinefm repro --configfile CONFIG</code> writes repro/report.csv.</p>")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)  # an empty difference stays ""
    same = df["identical"].str.lower().eq("true")
    summary = (f"<p>{int(same.sum())} of {len(df)} outputs identical"
               + (f"; <strong>{int((~same).sum())} differ</strong>" if (~same).any() else "") + ".</p>")
    shown = pd.concat([df[~same], df[same]])
    return Section("repro", "Reproducibility", lead + summary + tables.table_html(shown))


SECTIONS: tuple[Callable[[Path, dict], Section], ...] = (
    flow_section, labels_section, pretrain_section, auroc_section, delong_section, thresholds_section,
    regression_section, subgroups_section, view_attention_section, bland_altman_section, attention_section,
    echo_section, external_flow_section, external_validation_section, settings_section, repro_section,
)


def render_page(sections: list[Section], title: str, subtitle: str) -> str:
    """The full HTML document."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>'
                     for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f'<body data-broken-images="unknown"><header><h1>{html.escape(title)}</h1>'
            f"<p>{html.escape(subtitle)}</p></header><main><nav>{nav}</nav>"
            f'<p id="broken"></p>\n{body}\n</main><script>{SCRIPT}</script></body></html>\n')


def build_report(results_dir: str | os.PathLike, out_html: str | os.PathLike, config: dict) -> Path:
    """Write the static report page for ``results_dir`` to ``out_html`` (atomically) and return its path."""
    results = Path(results_dir)
    if not results.is_dir():
        raise FileNotFoundError(f"results_dir: {results} is not a folder — run the pipeline first "
                                "(config.results names it)")
    sections = [make(results, config) for make in SECTIONS]
    cohort = (config.get("cohort") or {}).get("name", "")
    page = render_page(sections, "cinefm — cine CMR foundation model report",
                       f"cohort: {cohort} · results: {results}")
    out = Path(out_html)
    write_text(out, page)
    n_missing = sum('class="missing"' in s.body for s in sections)
    log.info("wrote %s (%d sections, %d with absent inputs)", out, len(sections), n_missing)
    return out
