"""``cinefm leaderboard``: a Shiny for Python app over a run's statistics, figures and heat-map videos.

Read-only: the app reads the tables once at start (:func:`cinefm.report.leaderboard.load_tables`)
and serves ``results/stats`` (figures) and ``results/attention`` (videos) as static files; it
writes nothing. Binds 127.0.0.1 unless told otherwise. Shiny for Python 1.8: ``ui.page_sidebar``,
``render.data_frame`` with ``render.DataGrid(filters=True)`` (click a header to sort, a column's
box to filter), ``App(static_assets={...})`` (https://shiny.posit.co/py/api/core/).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cinefm.report.leaderboard import (
    FILTERS,
    choices,
    experiments_of,
    figures_for,
    filter_rows,
    load_tables,
    sort_default,
    videos_for,
)

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
CSS = """
.lb-figs figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
.lb-figs img{max-width:460px;border:1px solid #eee}.lb-figs figcaption{font-size:12px;color:#555}
.lb-videos figure{display:inline-block;margin:6px 10px 6px 0;text-align:center}
.lb-videos img{width:160px;image-rendering:pixelated;border:1px solid #ddd}
.lb-videos figcaption{font-size:12px}
"""


def build_app(results: str | os.PathLike):
    """The Shiny ``App`` over ``results`` (raises :class:`NoStatistics` when it has no statistics)."""
    from shiny import App, reactive, render, ui

    given, root = Path(results), Path(results).resolve()
    tables = load_tables(root)
    by_key = {t.key: t for t in tables}
    first = next((t.key for t in tables if t.key == "internal/auroc"), tables[0].key)
    sidebar = ui.sidebar(
        ui.input_select("table", "Statistics table", {t.key: t.title for t in tables}, selected=first),
        *[ui.input_select(k, k.capitalize(), choices(tables, k)) for k in FILTERS],
        ui.p(ui.tags.small(f"{len(tables)} tables from {given} (read-only). Click a column header to sort; "
                           "the boxes under the headers filter too.")),
        width=300,
    )
    app_ui = ui.page_sidebar(
        sidebar,
        ui.tags.style(CSS),
        ui.card(ui.card_header(ui.output_text("table_title", inline=True)),
                ui.output_data_frame("grid"), ui.p(ui.output_text("row_count", inline=True), id="row-count")),
        ui.card(ui.card_header("ROC curves and Bland–Altman plots of these rows"), ui.output_ui("figures")),
        ui.card(ui.card_header("Attention heat-map videos of these experiments"), ui.output_ui("videos")),
        title=f"cinefm leaderboard — {root.name}",
        fillable=False,
    )

    def server(input, output, session):
        @reactive.calc
        def table():
            return by_key[input.table()]

        @reactive.calc
        def rows():
            t = table()
            if t.frame.empty:
                return t.frame
            return sort_default(t, filter_rows(t.frame, {k: input[k]() for k in FILTERS}))

        @render.text
        def table_title():
            return f"{table().title} ({table().path.relative_to(root)})"

        @render.data_frame
        def grid():
            return render.DataGrid(rows(), filters=True, width="100%", height="420px")

        @render.text
        def row_count():
            return f"{len(rows())} of {len(table().frame)} rows match the filters"

        @render.ui
        def figures():
            paths = figures_for(root, table(), rows())
            if not paths:
                return ui.p("No ROC or Bland–Altman figure for these rows.")
            return ui.div(*[ui.tags.figure(ui.img(src=f"stats/{p.relative_to(root / 'stats').as_posix()}",
                                                  alt=p.stem),
                                           ui.tags.figcaption(p.stem.replace("_", " "))) for p in paths],
                          class_="lb-figs")

        @render.ui
        def videos():
            vids = videos_for(root, experiments_of(rows()))
            if vids.empty:
                return ui.p("No heat-map videos for these experiments (config attention.experiments, "
                            "rule attention_videos).")
            return ui.div(*[ui.tags.figure(ui.a(ui.img(src=r.url_poster, alt=f"{r.study_id} {r.view}"),
                                                href=r.url_mp4, target="_blank"),
                                           ui.tags.figcaption(ui.a(f"{r.experiment} · {r.study_id} · {r.view}",
                                                                   href=r.url_mp4, target="_blank")))
                            for r in vids.itertuples()], class_="lb-videos")

    static = {"/stats": root / "stats"}
    if (root / "attention").is_dir():
        static["/attention"] = root / "attention"
    return App(app_ui, server, static_assets=static)


def serve(results: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build the app (failing before binding when there is nothing to show) and serve it until Ctrl+C."""
    from shiny import run_app

    app = build_app(results)
    if host not in LOCAL_HOSTS:
        log.warning("leaderboard: listening on %s makes the run's statistics visible to every machine that "
                    "reaches this one; the default 127.0.0.1 keeps them on this machine", host)
    print(f"cinefm leaderboard: http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
    run_app(app, host=host, port=port, launch_browser=False, dev_mode=False, log_level="warning")
