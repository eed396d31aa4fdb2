"""``cinefm repro``: rerun a chosen set of rules into a scratch folder and compare with the original run.

A finished run (a working directory with ``results/`` and Snakemake's metadata) is taken apart by
``snakemake --summary``, which names every output and the rule that wrote it. The chosen rules
(default: every rule but the training ones, :data:`TRAINING_RULES`, and those known to differ,
:data:`NONDETERMINISTIC`) are rerun, forced and alone (``--allowed-rules``), in
``<results>/repro/work``: its ``results/`` is the original tree hard-linked file by file (Snakemake
removes a job's outputs before it runs, so the original files are never touched), its config the
original one with ``results`` moved there, so the rerun sees the same inputs and config values and
rewrites only the chosen rules' outputs. Each output is then compared with the original:

* every output of a non-training rule byte for byte (sha256; a folder file by file). Two things
  are set aside first: in a text output, the rerun's results folder written as the original's (a run
  whose config names an absolute ``results`` folder writes it into ``config.yaml`` and the report), and
  in the HTML report its own repro section, which shows the previous check;
* the CSV outputs of a training rule (metrics, predictions) number by number, and its checkpoints
  weight by weight (``state_dict``; the callbacks' state names the run's folder), within
  ``atol + rtol * |original|`` (:data:`ATOL`, :data:`RTOL`); its other outputs by sha256.

``<results>/repro/report.csv`` (rule, output, kind, identical, difference) is written atomically and
the report's "Reproducibility" section shows it (``cinefm repro`` re-renders ``report/index.html``
when the run has one). Snakemake's ``--summary``: https://snakemake.readthedocs.io/en/stable/executing/cli.html
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cinefm.atomic import write_csv
from cinefm.config import REPO_ROOT
from cinefm.inference.folder import sha256_file

log = logging.getLogger(__name__)

SNAKEFILE = REPO_ROOT / "Snakefile"
# Rules that fit a model: their outputs depend on floating-point summation order across threads and
# devices; compared by their tables within a tolerance, not byte for byte. `all` only collects.
TRAINING_RULES = ("pretrain", "finetune")
NOT_RERUN = ("all", "all_stats")
# Rules known to give other bytes from the same inputs, left out of the default set (still checked when
# named), each with the reason the report gives. None at present: `reports` was one until its WordPiece
# training was made deterministic (cinefm.text.tokenizer.train_wordpiece).
NONDETERMINISTIC: dict[str, str] = {}
# Files a rule writes beside its declared outputs (folders under the results folder): left out of the
# scratch copy when the rule is rerun, so it rewrites them, and compared file by file.
SIDE_OUTPUTS = {"ingest_extract": ("h5",)}
ATOL = 1e-6  # absolute tolerance of a training rule's numbers (not a method number: a check setting)
RTOL = 1e-4  # relative tolerance, of |original|
REPORT_COLUMNS = ["rule", "output", "kind", "identical", "difference"]
# the report's own repro section: left out when comparing the HTML report (it shows the previous check)
_REPRO_SECTION = re.compile(rb'<section id="repro">.*?</section>', re.S)
_REPRO_NAV = re.compile(rb'<a href="#repro">[^<]*</a>')


class ReproError(RuntimeError):
    """A run that cannot be checked (no results, unknown rule) or a rerun that failed."""


@dataclass(frozen=True)
class Output:
    rule: str
    path: str  # relative to the working directory, as Snakemake names it


def _snakemake(workdir: Path, configfile: Path, *args: str, cores: int = 2) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(SNAKEFILE),
           "--configfile", str(configfile), "--directory", str(workdir), "--cores", str(cores), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)


def run_outputs(workdir: Path, configfile: Path) -> list[Output]:
    """Every output of the run in ``workdir`` and its rule (``snakemake --summary``)."""
    proc = _snakemake(workdir, configfile, "--summary")
    if proc.returncode != 0:
        raise ReproError(f"snakemake --summary failed in {workdir}:\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if "\t" in ln]
    if not lines:
        raise ReproError(f"snakemake --summary in {workdir} listed no outputs:\n{proc.stderr[-2000:]}")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"))
    return [Output(r["rule"], r["output_file"]) for r in rows if r.get("rule") and r["rule"] != "-"]


def deterministic_rules(outputs: list[Output]) -> list[str]:
    return sorted({o.rule for o in outputs} - set(TRAINING_RULES) - set(NOT_RERUN) - set(NONDETERMINISTIC))


TEXT_SUFFIXES = (".csv", ".tsv", ".json", ".yaml", ".txt", ".html")


def _sha256(path: Path, rename: tuple[bytes, bytes] | None = None) -> str:
    """sha256 of a file; a text file with ``rename = (rerun folder, original folder)`` applied, an HTML
    page without its repro section."""
    if path.suffix in TEXT_SUFFIXES and (rename or path.suffix == ".html"):
        data = path.read_bytes()
        if rename and rename[0] != rename[1]:
            data = data.replace(*rename)
        if path.suffix == ".html":
            data = _REPRO_NAV.sub(b"", _REPRO_SECTION.sub(b"", data))
        return hashlib.sha256(data).hexdigest()
    return sha256_file(path)


def _files(path: Path) -> dict[str, Path]:
    if path.is_dir():
        return {str(p.relative_to(path)): p for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path} if path.exists() else {}


def _first_difference(a: Path, b: Path, rename: tuple[bytes, bytes] | None = None) -> str:
    if a.suffix not in TEXT_SUFFIXES:
        return f"sha256 differs ({a.stat().st_size} vs {b.stat().st_size} bytes)"
    text_b = b.read_text(errors="replace")
    if rename:
        text_b = text_b.replace(rename[0].decode(), rename[1].decode())
    la, lb = a.read_text(errors="replace").splitlines(), text_b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False), start=1):
        if x != y:
            return f"line {i}: {x[:80]!r} vs {y[:80]!r}"
    return f"{len(la)} vs {len(lb)} lines"


def _compare_bytes(orig: Path, new: Path, rename: tuple[bytes, bytes] | None = None) -> str:
    fo, fn = _files(orig), _files(new)
    if not fn:
        return "not rewritten by the rerun"
    if set(fo) != set(fn):
        extra, missing = sorted(set(fn) - set(fo)), sorted(set(fo) - set(fn))
        return f"files differ: only in the rerun {extra[:5]}, only in the original {missing[:5]}"
    for name in fo:
        if _sha256(fo[name]) != _sha256(fn[name], rename):
            where = f"{name}: " if name else ""
            return where + _first_difference(fo[name], fn[name], rename)
    return ""


def _compare_numbers(orig: Path, new: Path, atol: float, rtol: float) -> str:
    a, b = pd.read_csv(orig), pd.read_csv(new)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return f"shape/columns differ: {a.shape} {list(a.columns)[:6]} vs {b.shape} {list(b.columns)[:6]}"
    worst, where = 0.0, ""
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            if not np.array_equal(np.isnan(xv), np.isnan(yv)):
                return f"{col}: missing values differ"
            ok = np.isnan(xv) | np.isclose(yv, xv, atol=atol, rtol=rtol)
            if not ok.all():
                d = np.nanmax(np.abs(yv - xv))
                return f"{col}: max |difference| {d:.3g} over atol {atol:g} + rtol {rtol:g}"
            d = float(np.nanmax(np.abs(yv - xv))) if len(xv) and not np.isnan(xv).all() else 0.0
            if d > worst:
                worst, where = d, col
        elif not x.astype(str).equals(y.astype(str)):
            return f"{col}: values differ"
    return "" if worst == 0 else f"within tolerance (max |difference| {worst:.3g} in {where})"


def _compare_checkpoint(orig: Path, new: Path, atol: float, rtol: float) -> str:
    """A Lightning checkpoint's weights (``state_dict``) tensor by tensor within the tolerance; the rest of
    the file (callback states naming the run's own folder) is not compared."""
    import torch

    a = torch.load(orig, map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(new, map_location="cpu", weights_only=False)["state_dict"]
    if list(a) != list(b):
        return f"weights differ in names: {sorted(set(a) ^ set(b))[:5]}"
    worst, where = 0.0, ""
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"{name}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"
        if not x.is_floating_point():
            if not torch.equal(x, y):
                return f"{name}: values differ"
            continue
        if not torch.allclose(y, x, atol=atol, rtol=rtol, equal_nan=True):
            return f"{name}: max |difference| {(y - x).abs().max().item():.3g} over atol {atol:g} + rtol {rtol:g}"
        d = (y - x).abs().max().item() if x.numel() else 0.0
        if d > worst:
            worst, where = d, name
    return "" if worst == 0 else f"within tolerance (max |difference| {worst:.3g} in {where})"


def compare(rule: str, orig: Path, new: Path, atol: float = ATOL, rtol: float = RTOL,
            rename: tuple[bytes, bytes] | None = None) -> dict:
    """One row of the report: the output of ``rule`` in the original run against the rerun."""
    if rule in TRAINING_RULES and orig.suffix == ".ckpt" and orig.is_file() and new.is_file():
        diff = _compare_checkpoint(orig, new, atol, rtol)
        identical = diff == "" or diff.startswith("within tolerance")
        return {"kind": "weights", "identical": identical, "difference": diff}
    if rule in TRAINING_RULES and orig.suffix == ".csv" and orig.is_file() and new.is_file():
        diff = _compare_numbers(orig, new, atol, rtol)
        identical = diff == "" or diff.startswith("within tolerance")
        return {"kind": "numbers", "identical": identical, "difference": diff}
    diff = _compare_bytes(orig, new, rename)
    if diff and rule in NONDETERMINISTIC:
        diff += f" (known: {NONDETERMINISTIC[rule]})"
    return {"kind": "sha256", "identical": diff == "", "difference": diff}


def _link_tree(src: Path, dst: Path, skip: list[Path]) -> None:
    """``dst`` a copy of ``src`` made of hard links (same inodes, same mtimes), less the ``skip`` folders."""
    skipped = {s.resolve() for s in skip}
    for root, dirs, files in os.walk(src):
        root_p = Path(root)
        dirs[:] = [d for d in dirs if (root_p / d).resolve() not in skipped]
        target = dst / root_p.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copystat(root_p, target)
        for f in files:
            try:
                os.link(root_p / f, target / f)
            except OSError:  # another file system: a copy with the same times
                shutil.copy2(root_p / f, target / f)


def _restore_dir_times(src: Path, dst: Path, skip: list[Path]) -> None:
    skipped = {s.resolve() for s in skip}
    for root, dirs, _ in os.walk(src):
        dirs[:] = [d for d in dirs if (Path(root) / d).resolve() not in skipped]
        shutil.copystat(root, dst / Path(root).relative_to(src))


def repro(configfile: str | os.PathLike, workdir: str | os.PathLike = ".", rules: list[str] | None = None,
          *, cores: int = 2, atol: float = ATOL, rtol: float = RTOL, keep: bool = False) -> pd.DataFrame:
    """Rerun ``rules`` (default: every non-training rule) of the run in ``workdir`` into a scratch
    folder, compare every output and write ``<results>/repro/report.csv``; returns the table."""
    workdir, configfile = Path(workdir).resolve(), Path(configfile).resolve()
    config = yaml.safe_load(configfile.read_text())
    results = Path(config.get("results", "results"))
    results = results if results.is_absolute() else workdir / results
    if not results.is_dir():
        raise ReproError(f"results folder {results} does not exist: run the pipeline first")
    outputs = run_outputs(workdir, configfile)
    known = sorted({o.rule for o in outputs})
    chosen = sorted(rules) if rules else deterministic_rules(outputs)
    unknown = [r for r in chosen if r not in known]
    if unknown:
        raise ReproError(f"rules {unknown} wrote nothing in this run; its rules: {', '.join(known)}")
    repro_dir = results / "repro"
    scratch = repro_dir / "work"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    side = sorted({results / s for r in chosen for s in SIDE_OUTPUTS.get(r, ())})
    _link_tree(results, scratch / "results", [repro_dir, *side])
    scratch_config = scratch / "config.yaml"
    # the same `results` string where it is relative; else the scratch folder's absolute path
    new_results = "results" if not Path(config.get("results", "results")).is_absolute() else str(scratch / "results")
    scratch_config.write_text(yaml.safe_dump({**config, "results": new_results}, sort_keys=False))
    rename = (str(scratch / "results").encode(), str(results).encode())

    def in_scratch(path: str) -> Path:
        p = Path(path)
        p = p if p.is_absolute() else workdir / p
        return scratch / "results" / p.resolve().relative_to(results.resolve())

    todo = [o for o in outputs if o.rule in chosen]
    absolute = Path(new_results).is_absolute()
    targets = sorted({str(in_scratch(o.path) if absolute else in_scratch(o.path).relative_to(scratch)) for o in todo})
    log.info("rerunning %d outputs of %d rules in %s", len(targets), len(chosen), scratch)
    _restore_dir_times(results, scratch / "results", [repro_dir, *side])
    # only the chosen rules run: the outputs of every other rule are inputs as they stand (a rerun of
    # `splits` must not retrain the models downstream of it)
    proc = _snakemake(scratch, scratch_config, "--forcerun", *chosen, "--allowed-rules", *chosen,
                      "--rerun-triggers", "mtime",
                      "--profile", str(REPO_ROOT / "profiles" / "local"), *targets, cores=cores)
    if proc.returncode != 0:
        raise ReproError(f"the rerun failed (scratch folder {scratch} kept):\n{proc.stderr[-4000:]}")
    rows = []
    for o in sorted(todo, key=lambda o: (o.rule, o.path)):
        orig = Path(o.path) if Path(o.path).is_absolute() else workdir / o.path
        rel = str(orig.resolve().relative_to(results.resolve()))
        rows.append({"rule": o.rule, "output": rel, **compare(o.rule, orig, in_scratch(o.path), atol, rtol, rename)})
    for rule in chosen:
        for s in SIDE_OUTPUTS.get(rule, ()):
            rows.append({"rule": rule, "output": f"{s}/",
                         **compare(rule, results / s, scratch / "results" / s, atol, rtol, rename)})
    table = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    write_csv(table, repro_dir / "report.csv", index=False)
    if not keep:
        shutil.rmtree(scratch)
    _rerender_report(results)
    return table


def _rerender_report(results: Path) -> None:
    """Re-render ``report/index.html`` with the new repro section, from the run's resolved config."""
    page, resolved = results / "report" / "index.html", results / "config.yaml"
    if not (page.is_file() and resolved.is_file()):
        return
    from cinefm.report.html import build_report

    config = yaml.safe_load(resolved.read_text())
    config.setdefault("echonet", bool((results / "stats" / "echonet" / "comparison.csv").exists()))
    stat = page.stat()
    build_report(results, page, config)
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # Snakemake sees the report as it was
