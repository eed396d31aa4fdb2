"""Attention share per view plane: per experiment and task, relative to the model's other tasks."""

import numpy as np
import pandas as pd
import pytest

from cinefm.stats.view_attention import view_attention_plot, view_attention_table


def _rows(shares: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(shares, columns=["attn_4CH", "attn_SAX"]).assign(study_id=["S1", "S2", "S3"][:len(shares)])


def test_mean_share_per_view_and_the_difference_between_the_tasks_of_one_model():
    hcm = _rows([[0.2, 0.8], [0.4, 0.6], [np.nan, 1.0]])   # S3 has no 4CH view
    dcm = _rows([[0.6, 0.4], [0.6, 0.4], [np.nan, 1.0]])
    lvef = _rows([[0.5, 0.5], [0.5, 0.5]])
    table = view_attention_table([("disease_run", "disease_run/hcm", "hcm", hcm),
                                  ("disease_run", "disease_run/dcm", "dcm", dcm),
                                  ("lvef_run", "lvef_run", "lvef", lvef)]).set_index(["experiment", "view"])
    assert table.loc[("disease_run/hcm", "4CH"), "n"] == 2 and table.loc[("disease_run/hcm", "SAX"), "n"] == 3
    assert table.loc[("disease_run/hcm", "4CH"), "share"] == pytest.approx(0.3)
    assert table.loc[("disease_run/dcm", "4CH"), "share"] == pytest.approx(0.6)
    assert table.loc[("disease_run/hcm", "4CH"), "share_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    # hcm reads the 4CH less than the model's mean over its two tasks (0.45), dcm more
    assert table.loc[("disease_run/hcm", "4CH"), "relative"] == pytest.approx(-0.15)
    assert table.loc[("disease_run/dcm", "4CH"), "relative"] == pytest.approx(0.15)
    assert table.loc[("lvef_run", "SAX"), "relative"] == pytest.approx(0.0)  # one task: nothing to compare


def test_no_attention_columns_give_an_empty_table_and_the_plot_draws_every_row():
    assert view_attention_table([("m", "m", "lvef", pd.DataFrame({"study_id": ["S1"], "score": [50.0]}))]).empty
    table = view_attention_table([("m", "m/hcm", "hcm", _rows([[0.2, 0.8]])), ("m", "m/dcm", "dcm", _rows([[0.7, 0.3]]))])
    fig = view_attention_plot(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["m/hcm", "m/dcm"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.20", "0.30", "0.70", "0.80"]
