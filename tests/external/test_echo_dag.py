"""The DAG with EchoNet configured: phantom release → adapter → one fine-tuning job per echo experiment → stats → report."""

from __future__ import annotations

from .dag import dry_run_jobs


def _dry_run(tmp_path, enabled: bool) -> dict[str, int]:
    return dry_run_jobs(tmp_path, lambda c: c["external"]["echonet"]["phantom"].update(enabled=enabled))


def test_echonet_phantom_adds_the_echo_jobs_and_feeds_the_report(tmp_path):
    on = _dry_run(tmp_path / "on", enabled=True)
    off = _dry_run(tmp_path / "off", enabled=False)
    assert {k: on[k] for k in ("echonet_phantom", "echonet", "echonet_finetune", "echonet_stats")} == \
        {"echonet_phantom": 1, "echonet": 1, "echonet_finetune": 2, "echonet_stats": 1}
    assert not {"echonet_phantom", "echonet", "echonet_finetune", "echonet_stats"} & set(off)
    assert on["total"] == off["total"] + 5 and on["report"] == off["report"] == 1
