"""The label stage: quality of the offline parser on hand-labelled reports, and throughput.

    .venv/bin/python benchmarks/labels.py [--reports 100000] [--llm-reports 40]
        [--latency-ms 20] [--concurrency 8] [--repeat 5] [--skip-throughput] [--reference-cues OTHER_labels.yaml]

Part 1 — quality and speed of cue engines on the hand-labelled CMR reports of
``tests/labels/data/cmr_reports.txt`` (a dev half the rules were tuned on, and held-out
rounds only scored: one row per split of the file): accuracy over (report, disease)
cells, F1 per disease, each held-out round's confusion counts, and reports/s (each
engine labels the reports ``--repeat`` times).
Engines: ours (``negex``) with and without report sections, and, when installed, the
library engines of ``benchmarks/label_engines.py`` (medspaCy ConText with its default
rules and with our cue set; negspacy). Reference of the ratio: our engine with sections.

With ``--reference-cues FILE`` (another ``labels.yaml``, e.g. ``git show
main:config/labels.yaml``): our engine's reports/s with the configured cue set against
that one, same code and reports, passes interleaved.

Part 2 — throughput: text stage and rules labels on synthetic reports, and the openai
backend against a local chat-completions server, concurrency 1 vs N. References: for
the text stage and the rules backend, sentence splitting alone (pysbd, the floor both
pay); for the openai backend, the same requests with concurrency 1. The server sleeps
``--latency-ms`` per request to stand in for model time.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from cinefm.config import REPO_ROOT, load_config  # noqa: E402
from cinefm.labels.chat_server import ChatServer, keyword_responder  # noqa: E402
from cinefm.labels.evaluation import evaluate_backend, read_labelled_reports  # noqa: E402
from cinefm.labels.openai import LLMSettings, OpenAIBackend  # noqa: E402
from cinefm.labels.rules import RuleLabeler  # noqa: E402
from cinefm.labels.vocabulary import load_vocabulary  # noqa: E402
from cinefm.privacy import PHANTOM_KEY  # noqa: E402
from cinefm.text.reports import build_reports  # noqa: E402
from cinefm.text.sentences import SentenceSplitter  # noqa: E402

SENTENCES = {
    "hcm": ("Asymmetric septal hypertrophy, consistent with hypertrophic cardiomyopathy (HCM).",
            "No evidence of hypertrophic cardiomyopathy.", "HCM cannot be excluded."),
    "dcm": ("Dilated LV with globally reduced systolic function, consistent with dilated cardiomyopathy.",
            "No features of DCM.", "Mild LV dilatation, ?DCM."),
    "prior_mi": ("Old LAD territory infarct (prior MI) with an akinetic anteroseptal segment.",
                 "No LGE to suggest previous myocardial infarction.", "Questionable subendocardial LGE, possible old MI."),
    "rv_dilation": ("The RV is dilated (RVEDV 230 ml).", "The right ventricle is not dilated.",
                    "Possible mild RV dilatation."),
    "pericardial_effusion": ("Small circumferential pericardial effusion.", "No pericardial effusion.",
                             "A trace pericardial effusion cannot be excluded."),
    "amyloidosis": ("Appearances consistent with cardiac amyloid.", "No evidence of cardiac amyloidosis.",
                    "Amyloid cannot be excluded."),
}
NAMES = ["Anna Rossi", "Jonas Weber", "Sofia Meyer", "Erik Hansen", "Lea Ortega", "Karl Novak"]


def synthetic_reports(n: int, seed: int = 0) -> list[list[str]]:
    """Rows (patient_id, patient_name, accession_number, exam_date, report_text) with PHI inside."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        name = NAMES[i % len(NAMES)]
        date = f"20{rng.integers(10, 24)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        body = [SENTENCES[d][int(rng.choice(3, p=[0.2, 0.6, 0.2]))] for d in SENTENCES if rng.random() < 0.6]
        text = (f"CARDIAC MRI REPORT\nPatient: {name}   MRN: {10_000_000 + i}   Exam date: {date}\n"
                f"Clinical history: Dr. Smith referred {name.split()[0]} for breathlessness.\n"
                f"Findings: LVEDV {rng.integers(90, 260)} ml, LVEF {rng.integers(15, 75)}%. " + " ".join(body)
                + f"\nImpression:\n1. {body[0] if body else 'Normal CMR study.'}\nReported by Dr. E. Novak on {date}.")
        rows.append([str(10_000_000 + i), name, f"A{20_000_000 + i}", date, text])
    return rows


def _rate(n: int, seconds: float) -> float:
    return n / max(seconds, 1e-9)


DEV_SET = REPO_ROOT / "tests" / "labels" / "data" / "cmr_reports.txt"


def _engines(vocab) -> list[tuple[object | None, str]]:
    """``(engine or None for ours, note)``; library engines only when installed."""
    out: list[tuple[object | None, str]] = [(None, "")]
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from label_engines import ConTextEngine, NegspacyEngine
    except ImportError as err:  # pragma: no cover - depends on what is installed
        print(f"(library engines skipped: {err}; install them as benchmarks/label_engines.py says)")
        return out
    for build in (ConTextEngine, lambda: ConTextEngine(vocab), NegspacyEngine):
        try:
            out.append((build(), ""))
        except ImportError as err:
            print(f"(an engine is skipped: {err}; install it as benchmarks/label_engines.py says)")
    return out


def quality(vocab, diseases: list[str], repeat: int) -> None:
    """Part 1 of the module docstring: one row per engine × split, then the confusion counts."""
    reports = read_labelled_reports(DEV_SET, diseases)
    splitter = SentenceSplitter()
    counts = reports["split"].value_counts()
    print(f"hand-labelled reports: {DEV_SET.relative_to(REPO_ROOT)} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"cue set {vocab.cue_set}")
    rows, reference, ours = [], None, None
    for engine, _ in _engines(vocab):
        for sections in (True, False):
            labeler = RuleLabeler(vocab, splitter, engine=engine, sections=sections)
            texts = reports["report_text"].tolist() * repeat
            t = time.perf_counter()
            labeler.label(texts)
            rate = _rate(len(texts), time.perf_counter() - t)
            scores = evaluate_backend(labeler, reports, diseases)
            reference = reference or rate
            if ours is None:
                ours = scores
            for split, s in scores.items():  # dev, then each held-out round in file order
                rows.append((labeler.model, split, s.accuracy, [s.f1[d] for d in diseases], rate))
    short = {"hcm": "hcm", "dcm": "dcm", "prior_mi": "mi", "rv_dilation": "rv", "pericardial_effusion": "eff",
             "amyloidosis": "amy"}
    head = " ".join(f"{short.get(d, d)[:5]:>5}" for d in diseases)
    print(f"{'engine':<26} {'split':<8} {'acc':>6} {head}  {'reports/s':>9} {'ratio':>6}")
    for model, split, acc, f1, rate in rows:
        f1s = " ".join(f"{v:5.2f}" for v in f1)
        print(f"{model:<26} {split:<8} {acc:6.3f} {f1s}  {rate:9.0f} {rate / reference:6.2f}")
    # Per writing round (the id's letters: C, H, K, M dev; R held-out), ours only: what each
    # held-out round scores now, after it joined dev or not (benchmarks/README.md).
    by_round = reports.assign(split=reports["id"].str.extract(r"^([A-Za-z]+)", expand=False)
                              + " (" + reports["split"] + ")")
    print(f"per writing round, {RuleLabeler(vocab, splitter).model}:")
    for split, s in evaluate_backend(RuleLabeler(vocab, splitter), by_round, diseases).items():
        f1s = " ".join(f"{s.f1[d]:5.2f}" for d in diseases)
        print(f"  {split:<14} {s.n_reports:4d} reports  acc {s.accuracy:6.3f}  F1 {f1s}  errors {len(s.errors):2d}  "
              f"LVEF exact {s.lvef_exact * s.n_reports:.0f}/{s.n_reports}")
    for split, s in ours.items():
        if split == "dev":
            continue
        print(f"{split} ({s.n_reports} reports): confusion of {RuleLabeler(vocab, splitter).model} "
              "(truth rows x predicted columns 1/0/empty), F1; LVEF read exactly "
              f"{s.lvef_exact * s.n_reports:.0f}/{s.n_reports}:")
        for d in diseases:
            m = s.confusion[d].to_numpy()
            print(f"  {d:<22} " + " | ".join(" ".join(f"{v:3d}" for v in row) for row in m) + f"   {s.f1[d]:.3f}")
        if len(s.errors):
            print(f"{split} errors ({len(s.errors)} of {s.n_reports * len(diseases)} cells):",
                  ", ".join(f"{r.id}:{r.disease} {r.truth}->{r.predicted}" for r in s.errors.itertuples()))


def compare_cue_sets(vocab, reference_path: Path, diseases: list[str], rounds: int = 4) -> None:
    """Our engine with this cue set vs with ``reference_path`` (another ``labels.yaml``, e.g.
    ``git show main:config/labels.yaml``), same code and reports, passes interleaved."""
    texts = read_labelled_reports(DEV_SET, diseases)["report_text"].tolist()
    splitter = SentenceSplitter()
    labelers = {"this cue set": RuleLabeler(vocab, splitter),
                f"reference {reference_path.name}": RuleLabeler(load_vocabulary(reference_path, diseases), splitter)}
    rates: dict[str, list[float]] = {k: [] for k in labelers}
    for labeler in labelers.values():
        labeler.label(texts[:20])  # warm caches (typo memo, regexes)
    for _ in range(rounds):
        for name, labeler in labelers.items():
            t = time.perf_counter()
            labeler.label(texts)
            rates[name].append(_rate(len(texts), time.perf_counter() - t))
    ours, ref = (float(np.median(v)) for v in rates.values())
    print(f"cue sets, {len(texts)} reports x {rounds} interleaved passes, median reports/s: this {ours:.0f}, "
          f"reference {ref:.0f} ({labelers[next(iter(labelers))].cue_set} vs "
          f"{list(labelers.values())[1].cue_set}), ratio {ours / ref:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=100_000, help="synthetic reports for text + rules")
    ap.add_argument("--llm-reports", type=int, default=40, help="reports sent to the local chat server")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="simulated model time per request")
    ap.add_argument("--concurrency", type=int, default=8, help="N of the openai comparison")
    ap.add_argument("--repeat", type=int, default=5, help="passes over the hand-labelled reports when timing")
    ap.add_argument("--skip-throughput", action="store_true", help="part 1 only")
    ap.add_argument("--reference-cues", type=Path, default=None,
                    help="another labels.yaml: time our engine with it vs the configured one (interleaved)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(REPO_ROOT / "config" / "config.yaml")
    vocab = load_vocabulary(REPO_ROOT / cfg["labels"]["vocabulary"], cfg["labels"]["diseases"])
    quality(vocab, list(cfg["labels"]["diseases"]), args.repeat)
    if args.reference_cues is not None:
        compare_cue_sets(vocab, args.reference_cues, list(cfg["labels"]["diseases"]))
    if args.skip_throughput:
        return 0
    rows = synthetic_reports(args.reports)
    table = []

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "reports.csv"
        with open(src, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["patient_id", "patient_name", "accession_number", "exam_date", "report_text"])
            w.writerows(rows)
        t = time.perf_counter()
        build_reports(src, Path(tmp) / "text", PHANTOM_KEY, vocab_size=cfg["text"]["vocab_size"],
                      max_tokens=cfg["text"]["max_tokens"])
        text_rate = _rate(len(rows), time.perf_counter() - t)
        import pandas as pd

        texts = pd.read_csv(Path(tmp) / "text" / "reports.csv")["report_text"].tolist()

    splitter = SentenceSplitter()
    t = time.perf_counter()
    for text in texts:
        splitter(text)
    split_rate = _rate(len(texts), time.perf_counter() - t)
    rules = RuleLabeler(vocab, splitter)
    t = time.perf_counter()
    rules.label(texts)
    rules_rate = _rate(len(texts), time.perf_counter() - t)
    table.append(("text stage (scrub+split+WordPiece+JSON), reports/s", text_rate, split_rate))
    table.append(("rules backend, reports/s", rules_rate, split_rate))

    topics = {d.definition: [d.name, *d.abbreviations] for d in vocab.diseases}
    llm_texts = texts[: args.llm_reports]
    rates = {}
    for concurrency in (1, args.concurrency):
        with ChatServer(keyword_responder(topics, latency_s=args.latency_ms / 1000)) as server:
            backend = OpenAIBackend(LLMSettings(base_url=server.base_url, model="bench", concurrency=concurrency,
                                                max_retries=1, backoff_s=0.01, timeout_s=30), vocab)
            t = time.perf_counter()
            backend.label(llm_texts)
            rates[concurrency] = _rate(backend.requests_sent, time.perf_counter() - t)
    table.append((f"openai backend, requests/s (concurrency {args.concurrency} vs 1)",
                  rates[args.concurrency], rates[1]))

    print(f"{len(rows)} synthetic reports; {len(llm_texts)} x {len(vocab.diseases)} LLM requests with "
          f"{args.latency_ms:g} ms simulated latency; {os.cpu_count()} CPUs")
    print(f"{'measure':<62} {'ours':>10} {'reference':>10} {'ratio':>7}")
    for name, ours, ref in table:
        print(f"{name:<62} {ours:>10.1f} {ref:>10.1f} {ours / ref:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
