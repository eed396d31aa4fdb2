"""Shared fixtures of the statistics tests: pROC's aSAH example data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def asah() -> pd.DataFrame:
    """pROC's aSAH example (113 patients): outcome Good/Poor, s100b, ndka, ... (``data(aSAH)``).

    Exported once with ``write.csv(aSAH, row.names = FALSE)`` from R pROC 1.18.0 (GPL-3;
    data of Turck N, et al. Intensive Care Med 2010;36:107-115).
    """
    return pd.read_csv(DATA / "aSAH.csv")


@pytest.fixture(scope="session")
def asah_y(asah) -> np.ndarray:
    """aSAH outcome as 0 (Good, control) / 1 (Poor, case), as pROC's default levels."""
    return (asah["outcome"] == "Poor").to_numpy(dtype=int)
