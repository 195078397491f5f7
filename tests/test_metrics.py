"""Observability: ``GET /metrics``, the input-lag measure, the decision fields of
``response.interrupted`` (counts and definitions only: no wall-clock bounds)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from server import protocol as proto
from server.app import ServerSettings, create_app
from server.logcontext import SessionLogFilter, session_context
from server.metrics import InputLag
from simulator.fast import run_fast
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer test-key", "sdk_version": "1.33.2"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_input_lag_is_lateness_against_the_least_delayed_chunk():
    lag = InputLag(sample_rate=1000)
    # 10-sample chunks (10 ms) sent on time, one processed 50 ms late, then on time again.
    assert lag.push(1.010, 10) == pytest.approx(0.0)
    assert lag.push(1.020, 10) == pytest.approx(0.0)
    assert lag.push(1.080, 10) == pytest.approx(0.050)
    assert lag.push(1.040, 10) == pytest.approx(0.0)
    # A chunk processed earlier than any before (the first ones were late) resets the reference.
    assert lag.push(1.041, 10) == pytest.approx(0.0)
    assert lag.push(1.060, 10) == pytest.approx(0.009)


def test_metrics_page_counts_sessions_and_input_chunks(tmp_path):
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as client:
        assert client.post(
            "/distiller/create", headers=AUTH, json={"project": "demo", "config": TUTORIAL, "sdk_version": "1.33.2"}
        ).status_code == 201
        before = samples(client.get("/metrics").text)
        chunk = (np.zeros(320, dtype="<i2")).tobytes()  # 20 ms of silence
        with client.websocket_connect("/distiller/realtime/acc/demo/m1", headers=AUTH) as ws:
            assert json.loads(ws.receive_text())["type"] == "session.created"
            for _ in range(25):
                ws.send_text(proto.encode_client_message(proto.AudioAppend(chunk)))
            page = client.get("/metrics")
            during = samples(page.text)
        after = samples(client.get("/metrics").text)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    key = lambda name: (name, ())  # noqa: E731
    assert during[key("refinery_sessions_active")] == before[key("refinery_sessions_active")] + 1
    assert after[key("refinery_sessions_total")] == before[key("refinery_sessions_total")] + 1
    # Every chunk the server processed had its lag measured; the page may be read
    # before the last ones are processed, never after more than were sent.
    lag_count = after[key("refinery_input_lag_seconds_count")] - before[key("refinery_input_lag_seconds_count")]
    assert 1 <= lag_count <= 25
    for name in ("refinery_engine_jobs_queued", "refinery_send_queue_events", "refinery_interrupts_total"):
        assert key(name) in after, name


def test_response_interrupted_carries_decision_latency_and_floor():
    """The tutorial barge-in on the virtual clock: the fields are there and mean what they say."""
    result = run_fast(load_scenario(ROOT / "fixtures/scenarios/bargein_mid.yaml"))
    cuts = [e for e in result.client.log if e.type == "response.interrupted"]
    assert cuts, "the scenario must interrupt"
    vad = result.vad
    assert vad is not None
    for cut in cuts:
        decision, floor = cut.fields["decision_latency_ms"], cut.fields["decision_floor_ms"]
        # Unbroken speech from the onset fires after `threshold` frames at the earliest.
        assert floor >= vad.threshold * vad.frame_ms - 0.1
        assert decision >= floor - 0.1
    # The client's latency (onset in the mic -> event received) includes the decision.
    interrupt = result.metrics().interrupts[0]
    assert interrupt.latency_ms is not None and interrupt.latency_ms >= cuts[0].fields["decision_latency_ms"] - 1.0


def test_log_records_carry_the_session_id(caplog):
    logger = logging.getLogger("refinery.test")
    handler_filter = SessionLogFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="refinery.test"):
            with session_context("sess_42"):
                logger.info("inside")
            logger.info("outside")
    finally:
        caplog.handler.removeFilter(handler_filter)
    inside, outside = caplog.records
    assert inside.session_id == "sess_42" and outside.session_id == "-"


def _transcribe_jobs(client) -> float:
    return samples(client.get("/metrics").text).get(("refinery_engine_job_seconds_count", (("kind", "transcribe"),)), 0.0)


def _speculative_used(client) -> float:
    return samples(client.get("/metrics").text).get(("refinery_speculative_finals_total", (("outcome", "used"),)), 0.0)


def _ask_a_question(client, ws_name: str, others_in_flight: int = 0) -> str:
    """Stream a spoken question and end-of-turn silence (faster than real time); returns the final transcript.

    2.6 s into the silence (the final audio is fixed; the turn would end within
    the speculative lead) it waits until the server has taken that audio and no
    decode but ``others_in_flight`` is in flight: as in real time, where the
    question's partials are long done by then. The session asks for optional
    decodes on the frames that follow.
    """
    from server import metrics
    from simulator.audio import read_wav

    speech = (read_wav(ROOT / "fixtures/speech/question_stocks_joe.wav", 16000) * 32767).astype("<i2").tobytes()
    # 4 s of silence: past the tutorial's 3.5 s end of turn
    parts = [speech + bytes(2 * 16000 * 26 // 10), bytes(2 * 16000 * 14 // 10)]
    journals = client.app.state.journals
    with client.websocket_connect(f"/distiller/realtime/acc/demo/{ws_name}", headers=AUTH) as ws:
        assert json.loads(ws.receive_text())["type"] == "session.created"
        [journal] = [j for j in journals.sessions("demo") if j.uuid == ws_name and not j.ended]
        sent = 0
        for n, audio in enumerate(parts):
            if n:
                deadline = time.monotonic() + 60  # a hang guard, not a timing bound
                while len(journal.events("input_audio_buffer.append")) < sent or metrics.in_flight("transcribe") > others_in_flight:
                    assert time.monotonic() < deadline, "the server did not take the audio and finish its decodes in 60 s"
                    time.sleep(0.01)
            for i in range(0, len(audio), 960):
                ws.send_text(proto.encode_client_message(proto.AudioAppend(audio[i : i + 960])))
                sent += 1
        while True:
            event = json.loads(ws.receive_text())
            if event["type"] == "response.audio_transcript.done":
                return event["text"]


def test_partial_decodes_back_off_while_another_decode_is_in_flight(tmp_path):
    """Partials and speculative finals are skipped while any decode is in flight; the final never is."""
    from server import metrics

    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as client:
        assert client.post(
            "/distiller/create", headers=AUTH, json={"project": "demo", "config": TUTORIAL, "sdk_version": "1.33.2"}
        ).status_code == 201
        before, spec_before = _transcribe_jobs(client), _speculative_used(client)
        assert "stocks" in _ask_a_question(client, "free").lower()
        unloaded = _transcribe_jobs(client) - before
        unloaded_spec = _speculative_used(client) - spec_before
        # Another session's decode in flight (waiting for a worker) for the whole question.
        busy = metrics.TimedJob(lambda job: None, type("Decode", (), {"kind": "transcribe"})(), lambda: 0.0)
        try:
            before, spec_before = _transcribe_jobs(client), _speculative_used(client)
            assert "stocks" in _ask_a_question(client, "busy", others_in_flight=1).lower()
            loaded = _transcribe_jobs(client) - before
            loaded_spec = _speculative_used(client) - spec_before
        finally:
            busy.abandon()
    assert unloaded >= 2  # a partial and the final
    assert unloaded_spec == 1  # the final, decoded during the end-of-turn silence
    assert loaded == 1 and loaded_spec == 0  # the final alone, at the turn's end


def test_session_counts_reach_the_metrics_once_each():
    """What a session counted is added as it grows, never twice."""
    from types import SimpleNamespace

    from server import metrics

    def value(counter) -> float:
        return samples(metrics.render().decode())[(counter, ())]

    stats = SimpleNamespace(dropped=0)
    session = SimpleNamespace(detector=SimpleNamespace(stats=stats), counters={"responses": 0})
    reporter = metrics.SessionReporter()
    start = {n: value(n) for n in ("refinery_bargein_candidates_rejected_total", "refinery_echo_gated_frames_total", "refinery_turns_total")}
    stats.dropped, session.counters["echo_gated_frames"], session.counters["responses"] = 2, 5, 1
    reporter.update(session)
    reporter.update(session)  # nothing new
    stats.dropped = 3
    reporter.update(session)
    assert value("refinery_bargein_candidates_rejected_total") - start["refinery_bargein_candidates_rejected_total"] == 3
    assert value("refinery_echo_gated_frames_total") - start["refinery_echo_gated_frames_total"] == 5
    assert value("refinery_turns_total") - start["refinery_turns_total"] == 1


def test_speculative_final_outcomes_reach_the_metrics():
    """Speculative final decodes used and wasted (docs/asr.md), for the bench's hit rate."""
    from types import SimpleNamespace

    from server import metrics

    def value(outcome: str) -> float:
        return samples(metrics.render().decode()).get(("refinery_speculative_finals_total", (("outcome", outcome),)), 0.0)

    start = {o: value(o) for o in ("used", "wasted")}
    session = SimpleNamespace(detector=None, counters={"speculative_used": 0, "speculative_wasted": 0})
    reporter = metrics.SessionReporter()
    session.counters.update(speculative_used=3, speculative_wasted=1)
    reporter.update(session)
    reporter.update(session)  # nothing new
    session.counters["speculative_used"] = 4
    reporter.update(session)
    assert (value("used") - start["used"], value("wasted") - start["wasted"]) == (4, 1)
