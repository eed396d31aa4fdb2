"""Paired DeLong test on 10^6 scores: cinefm.stats.delong_test against R pROC::roc.test.

Prints one table: our time per test, pROC's time measured in the same run on the
same doubles (timed inside R with system.time, so R's start-up is excluded), and
the ratio. pROC is timed twice: roc.test alone on ready ``roc`` objects, and
roc() x2 + roc.test (what a user runs from raw scores, like our call).

    .venv/bin/python benchmarks/delong.py [--n 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from cinefm.stats import delong_test

R_SCRIPT = r"""
suppressMessages(library(pROC))
dir <- commandArgs(trailingOnly = TRUE)[1]
reps <- as.integer(commandArgs(trailingOnly = TRUE)[2])
rd <- function(v) { f <- file.path(dir, paste0(v, ".f64")); readBin(f, "double", file.size(f) / 8, 8, endian = "little") }
y <- rd("y"); a <- rd("a"); b <- rd("b")
full <- c(); test <- c()
for (i in seq_len(reps)) {
  t0 <- system.time({
    r1 <- roc(y, a, levels = c(0, 1), direction = "<", quiet = TRUE)
    r2 <- roc(y, b, levels = c(0, 1), direction = "<", quiet = TRUE)
  })[["elapsed"]]
  t1 <- system.time(res <- roc.test(r1, r2, method = "delong", paired = TRUE))[["elapsed"]]
  full <- c(full, t0 + t1); test <- c(test, t1)
}
cat(sprintf("%.17g %.17g %.17g %.17g\n", min(full), min(test), res$statistic, res$p.value))
"""


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (30 % cases) and two correlated, partly tied score vectors."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    a = rng.normal(size=n) + 0.8 * y
    b = np.round(0.7 * a + rng.normal(0, 0.7, n) + 0.2 * y, 3)  # rounding makes ties
    return y, a, b


def time_ours(y, a, b, repeats: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = delong_test(y, a, b, paired=True)
        times.append(time.perf_counter() - t0)
    return min(times), res.statistic, res.p_value


def time_proc(y, a, b, repeats: int) -> tuple[float, float, float, float] | None:
    rscript = shutil.which("Rscript")
    if rscript is None or subprocess.run([rscript, "-e", "library(pROC)"], capture_output=True).returncode:
        return None
    with tempfile.TemporaryDirectory() as d:
        for name, v in (("y", y), ("a", a), ("b", b)):
            v.astype("<f8").tofile(Path(d) / f"{name}.f64")
        (Path(d) / "bench.R").write_text(R_SCRIPT)
        out = subprocess.run([rscript, str(Path(d) / "bench.R"), d, str(repeats)], capture_output=True,
                             text=True, check=True)
    full, test, z, p = (float(v) for v in out.stdout.split())
    return full, test, z, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs, both sides")
    args = ap.parse_args()
    y, a, b = make_data(args.n)
    ours, z, p = time_ours(y, a, b, args.repeats)
    print(f"paired DeLong test, n = {args.n:,} ({int(y.sum()):,} cases), best of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"{'implementation':<44} {'seconds':>9} {'ratio (pROC / ours)':>20}")
    print(f"{'cinefm.stats.delong_test (raw scores)':<44} {ours:9.3f} {'':>20}   Z={z:.6f} p={p:.3g}")
    ref = time_proc(y, a, b, args.repeats)
    if ref is None:
        print("R pROC: not installed (Debian r-base-core r-cran-proc) - no reference timing")
        return
    full, test, rz, rp = ref
    print(f"{'pROC roc() x2 + roc.test(delong, paired)':<44} {full:9.3f} {full / ours:20.1f}   Z={rz:.6f} p={rp:.3g}")
    print(f"{'pROC roc.test alone (roc objects ready)':<44} {test:9.3f} {test / ours:20.1f}")
    print(f"|Z ours - Z pROC| = {abs(z - rz):.2e}")


if __name__ == "__main__":
    main()
