"""The openai backend against a real HTTP server on 127.0.0.1 (started here)."""

import threading
import time
from dataclasses import replace

import pandas as pd
import pytest

from cinefm.labels.cache import ResponseCache, cache_key
from cinefm.labels.chat_server import ChatServer, Reply, keyword_responder, report_and_question
from cinefm.labels.openai import EndpointError, LLMSettings, OpenAIBackend, check_endpoint
from cinefm.labels.table import label_reports

KEYWORDS = {
    "hcm": ["hypertrophic cardiomyopathy", "hcm"],
    "dcm": ["dilated cardiomyopathy", "dcm"],
    "prior_mi": ["infarct", "mi"],
    "rv_dilation": ["dilated right ventricle", "rv dilat"],
    "pericardial_effusion": ["pericardial effusion"],
    "amyloidosis": ["amyloid"],
}

# Markers in a report script the server's misbehaviour for that report.
FAULTY = {
    "S10": "FLAKY hypertrophic cardiomyopathy.",     # 500, then 429, then a good answer
    "S11": "SLOW no pericardial effusion. dcm.",      # first reply slower than the client timeout
    "S12": "GARBAGE amyloid.",                       # never valid JSON
    "S13": "FIXABLE cardiac amyloidosis.",           # invalid first, valid after the correction
}


class ScriptedServer:
    """Keyword answers plus the faults above; counts requests per report marker."""

    def __init__(self, vocab, latency_s=0.0):
        self.answer = keyword_responder({d.definition: KEYWORDS[d.key] for d in vocab.diseases}, latency_s)
        self.calls: dict[tuple, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request) -> Reply:
        report, question = report_and_question(request)
        key = (report, question, len(request["messages"]))
        with self.lock:
            n = self.calls[key] = self.calls.get(key, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if "FLAKY" in report and n == 1:
                return Reply(status=500, body='{"error": "overloaded"}')
            if "FLAKY" in report and n == 2:
                return Reply(status=429, body='{"error": "slow down"}', headers={"Retry-After": "0"})
            if "SLOW" in report and n == 1:
                return Reply('{"answer": "no"}', delay_s=0.6)
            if "GARBAGE" in report:
                return Reply("Sure! The answer is yes.")
            if "FIXABLE" in report and len(request["messages"]) == 2:
                return Reply("answer: yes")
            reply = self.answer(request)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            return Reply(reply.content)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def csv_with_faults(tmp_path, reports):
    rows = [(sid, text) for sid, (text, _, _) in reports.items()] + list(FAULTY.items())
    path = tmp_path / "reports.csv"
    pd.DataFrame(rows, columns=["study_id", "report_text"]).to_csv(path, index=False)
    return path


def _cfg(labels_cfg, base_url, **llm):
    settings = dict(labels_cfg["llm"], base_url=base_url, concurrency=4, max_retries=3, backoff_s=0.01,
                    timeout_s=0.3, **llm)
    return dict(labels_cfg, backend="openai", llm=settings)


def test_end_to_end_with_faults_then_a_rerun_from_the_cache_sends_nothing(
        labels_cfg, vocab, reports, csv_with_faults, tmp_path):
    script = ScriptedServer(vocab)
    with ChatServer(script) as server:
        cfg = _cfg(labels_cfg, server.base_url)
        first = label_reports(csv_with_faults, tmp_path / "a.csv", cfg, cache_dir=tmp_path / "cache")
        n_requests = len(server.requests)
        again = label_reports(csv_with_faults, tmp_path / "b.csv", cfg, cache_dir=tmp_path / "cache")
        assert len(server.requests) == n_requests  # zero requests on the rerun
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    pd.testing.assert_frame_equal(first, again)
    by = first.set_index("study_id")
    assert set(by["backend"]) == {"openai"} and set(by["model"]) == {labels_cfg["llm"]["model"]}
    assert by.loc["S01", "hcm"] == 1 and by.loc["S04", "amyloidosis"] == 0
    assert by.loc["S10", "hcm"] == 1 and by.loc["S10", "dcm"] == 0      # after 500 and 429
    assert by.loc["S11", "dcm"] == 1 and by.loc["S11", "pericardial_effusion"] == 0  # after a timeout
    assert by.loc["S13", "amyloidosis"] == 1                              # after a correction
    assert by.loc["S12"][list(KEYWORDS)].isna().all()                     # garbage -> unknown
    assert "invalid answer after 4 tries: not JSON" in by.loc["S12", "notes"]
    calls = script.calls.items()
    assert sorted({n for (rep, _, _), n in calls if "FLAKY" in rep}) == [3]   # 500, 429, ok
    assert sorted({n for (rep, _, _), n in calls if "SLOW" in rep}) == [2]    # timed out, ok
    assert sorted({k for (rep, _, k), _ in calls if "FIXABLE" in rep}) == [2, 4]  # + correction
    sent = server.requests[0]
    assert sent["temperature"] == 0.0 and sent["model"] == labels_cfg["llm"]["model"]
    assert sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://8.8.8.8:8000/v1"])
def test_remote_endpoint_is_refused_before_any_request(url, vocab):
    with pytest.raises(EndpointError, match=r"labels\.llm\.allow_remote"):
        OpenAIBackend(LLMSettings(base_url=url, model="m"), vocab)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1",
                                 "http://10.1.2.3/v1", "http://192.168.0.5:8080/v1", "http://[::1]:8000/v1"])
def test_local_and_cluster_endpoints_are_accepted(url):
    check_endpoint(url, allow_remote=False)


def test_allow_remote_accepts_a_remote_host_without_resolving_it():
    check_endpoint("https://api.example.com/v1", allow_remote=True)
    with pytest.raises(EndpointError, match="http"):
        check_endpoint("ftp://127.0.0.1/v1", allow_remote=True)


def test_wrong_model_or_url_stops_the_run_instead_of_labelling_everything_unknown(vocab):
    with ChatServer(lambda req: Reply(status=404, body='{"error": "model not found"}')) as server:
        backend = OpenAIBackend(LLMSettings(base_url=server.base_url, model="nope", concurrency=2), vocab)
        with pytest.raises(EndpointError, match="HTTP 404.*labels.llm.model"):
            backend.label(["HCM."] * 20)
        assert len(server.requests) < 20 * len(vocab.diseases)


def test_concurrency_limit_is_respected(vocab):
    two = replace(vocab, diseases=vocab.diseases[:2])
    for concurrency, low, high in [(1, 1, 1), (4, 2, 4)]:
        script = ScriptedServer(two, latency_s=0.03)
        with ChatServer(script) as server:
            OpenAIBackend(LLMSettings(base_url=server.base_url, model="m", concurrency=concurrency), two).label(
                ["HCM."] * 4)
        assert low <= script.max_in_flight <= high


def test_cache_is_keyed_by_model_prompt_and_report(tmp_path):
    msgs = [{"role": "user", "content": "report A"}]
    k = cache_key("m1", msgs, {"temperature": 0})
    assert k != cache_key("m2", msgs, {"temperature": 0})
    assert k != cache_key("m1", [{"role": "user", "content": "report B"}], {"temperature": 0})
    cache = ResponseCache(tmp_path)
    assert cache.get(k) is None
    cache.put(k, '{"answer": "no"}', "m1")
    assert cache.get(k) == '{"answer": "no"}'
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{k}.json"]
