"""Barge-in metrics of one run, computed from what the client saw and played.

Definitions (all times on the run clock, seconds; reported in ms):

- **barge-in latency**: onset of the user's speech in the microphone signal ->
  ``response.interrupted`` received by the client.
- **floor**: the earliest the spec's detector could fire for that speech with a
  perfect frame VAD: the window rule (ring of ``window_size`` frames, armed
  span, ``threshold``, lockout end) run over reference labels of the user's
  clean signal (see :mod:`simulator.floor`); floor = first firing frame - onset.
  A pause inside the utterance ("Stop, ... tell me about bonds") counts: the
  ring only fills with speech frames. **overhead** = latency - floor: what the
  acoustic path (echo, noise, the echo gate) and the confirmation cost.
- **false interrupt**: an interrupt not caused by user speech that should
  interrupt (echo, noise, speech marked ``expect_interrupt: false``); **missed
  interrupt**: user speech that should have interrupted and did not. "Should"
  is, unless the scenario says otherwise, "the floor exists": the window rule
  fires on the user's own speech while the detector is armed.
- **voice-to-voice**: end of the user's speech -> the speaker starts playing
  the first response created after that speech began.
- **talk-over**: assistant audio played between the user's onset and the
  interrupt; **audio after interrupt**: audio of the interrupted response played
  after the client received ``response.interrupted`` (should be 0).
- **truncation error**: ``audio_end_ms`` the server sent minus what the
  speaker really played of that response by then.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.client import LogEntry, PlacedUtterance, ResponseTrack
from simulator.floor import ArmedSpan, FrameLabels, first_fire, labels_from_spans, speech_frames_between
from simulator.scenario import Expect

#: An interrupt is attributed to speech that began before it and ended at most
#: this long (plus the detector window) before it.
ATTRIBUTION_SLACK_S = 0.5


@dataclass(frozen=True)
class VadParams:
    """The barge-in settings the metrics need (None in push-to-talk mode)."""

    threshold: int
    frame_ms: int
    window_size: int
    lockout_s: float
    grace_s: float


@dataclass(frozen=True)
class PlayedSegment:
    """Audio the speaker really played: ``[start_s, end_s)`` of ``response_id``."""

    start_s: float
    end_s: float
    response_id: str | None
    role: str | None = None


@dataclass
class RunRecord:
    """Everything the metrics read; built by a driver or by hand in tests."""

    log: list[LogEntry]
    utterances: list[PlacedUtterance]
    segments: list[PlayedSegment]
    responses: dict[str, ResponseTrack]
    vad: VadParams | None
    transcripts: list[str] = field(default_factory=list)
    send_playback_events: bool = True
    #: Reference speech labels of the clean user signal on the detector's frame grid;
    #: None = derived from the utterances' spans (records made by hand).
    labels: FrameLabels | None = None


@dataclass
class InterruptMetric:
    t: float
    response_id: str | None
    utterance: int | None
    onset_s: float | None
    latency_ms: float | None
    floor_ms: float | None  # None: the window rule never fires on the user's own speech
    overhead_ms: float | None
    audio_end_ms: int | None
    played_ms: float
    truncation_error_ms: float | None
    talk_over_ms: float | None
    audio_after_interrupt_ms: float
    deltas_after_interrupt: int
    false: bool


@dataclass
class UtteranceMetric:
    index: int
    utterance: int
    text: str
    onset_s: float
    offset_s: float
    expected_interrupt: bool
    expectation_source: str  # "scenario" or "auto"
    interrupted: bool
    speech_frames: int  # reference speech frames of this utterance (compare with the threshold)
    floor_ms: float | None  # when the window rule fires on it, from its onset (None: never)
    voice_to_voice_ms: float | None


@dataclass
class Metrics:
    interrupts: list[InterruptMetric]
    utterances: list[UtteranceMetric]
    false_interrupts: int
    missed_interrupts: int
    transcripts: list[str]
    statuses: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def latencies_ms(self) -> list[float]:
        return [i.latency_ms for i in self.interrupts if i.latency_ms is not None and not i.false]


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def _lockout_anchor(tr: ResponseTrack, lockout_s: float) -> float | None:
    # As the server: the first playback.started, unless the lockout counted from the
    # first delta was already over by then (a lockout is never restarted).
    if tr.first_delta_t is None:
        return tr.playback_started_t
    if tr.playback_started_t is not None and tr.playback_started_t < tr.first_delta_t + lockout_s:
        return tr.playback_started_t
    return tr.first_delta_t


def armed_span(rec: RunRecord, rid: str | None) -> ArmedSpan | None:
    """When the detector was armed for response ``rid``, as far as the client can tell.

    From the first delta (or ``playback.started``) until the first of: the client's
    ``playback.stopped`` after the last audio arrived, the estimated end of playback
    plus grace, a client cancel, the next response. An interrupted response counts
    as armed on and on: it was armed when it fired, and the floor asks when it
    could have fired at the earliest.
    """
    if rec.vad is None:
        return None
    tr = rec.responses.get(rid or "")
    if tr is None:
        return None
    starts = [t for t in (tr.first_delta_t, tr.playback_started_t) if t is not None]
    anchor = _lockout_anchor(tr, rec.vad.lockout_s)
    if not starts or anchor is None:
        return None
    start = min(starts)
    lockout_end = anchor + rec.vad.lockout_s
    if tr.interrupted_t is not None:
        return ArmedSpan(start, float("inf"), lockout_end)
    play_start = tr.playback_started_t if tr.playback_started_t is not None else tr.first_delta_t
    assert play_start is not None
    end = play_start + tr.received_ms / 1000.0 + rec.vad.grace_s
    if rec.send_playback_events and tr.audio_done_t is not None:
        stops = [e.t for e in rec.log if e.source == "client" and e.type == "playback.stopped" and e.t >= tr.audio_done_t]
        if stops:
            end = min(end, stops[0])
    cancels = [e.t for e in rec.log if e.source == "client" and e.type == "response.cancel" and e.response_id == rid]
    later = [o.created_t for o in rec.responses.values() if o.created_t is not None and o.created_t > start]
    end = min([end, *cancels, *later])
    return ArmedSpan(start, end, lockout_end)


def reference_labels_of(rec: RunRecord) -> FrameLabels:
    """The record's reference labels, or labels from the utterances' spans."""
    if rec.labels is not None:
        return rec.labels
    frame_ms = rec.vad.frame_ms if rec.vad else 30
    end = max((u.offset_s for u in rec.utterances), default=0.0) + 1.0
    return labels_from_spans([(u.onset_s, u.offset_s) for u in rec.utterances], int(end * 1000 / frame_ms) + 1, frame_ms)


def _next_onset(rec: RunRecord, u: PlacedUtterance) -> float:
    later = [o.onset_s for o in rec.utterances if o.onset_s > u.onset_s]
    return min(later, default=float("inf"))


def floor_fire_t(rec: RunRecord, u: PlacedUtterance, rid: str | None, labels: FrameLabels) -> float | None:
    """When the window rule fires on the user's own speech of ``u`` while ``rid`` is armed (None: never).

    A firing at or after the next utterance's onset belongs to that one, not to ``u``.
    """
    span = armed_span(rec, rid)
    if span is None or rec.vad is None:
        return None
    t = first_fire(labels, rec.vad.threshold, rec.vad.window_size, span, not_before=u.onset_s)
    return t if t is not None and t < _next_onset(rec, u) else None


def _response_for(rec: RunRecord, u: PlacedUtterance) -> str | None:
    # The latest response armed at some point while the user spoke.
    best: tuple[float, str] | None = None
    for rid in rec.responses:
        span = armed_span(rec, rid)
        if span is not None and span.start <= u.offset_s and span.end > u.onset_s:
            if best is None or span.start > best[0]:
                best = (span.start, rid)
    return best[1] if best else None


def _played_ms(rec: RunRecord, a: float, b: float, rid: str | None = None) -> float:
    total = 0.0
    for seg in rec.segments:
        if rid is not None and seg.response_id != rid:
            continue
        total += max(0.0, min(b, seg.end_s) - max(a, seg.start_s))
    return total * 1000.0


def compute_metrics(rec: RunRecord) -> Metrics:
    """All metrics of one run (pure: same record, same numbers)."""
    labels = reference_labels_of(rec)
    # Should this speech interrupt, unless the scenario says? Yes when the spec's window rule,
    # fed the user's own speech, fires on it while a response is armed: barge-in on, enough
    # speech frames within the window, after the lockout, before disarming. That firing is
    # also the utterance's floor, so it is found once here.
    fire = {u.index: floor_fire_t(rec, u, _response_for(rec, u), labels) for u in rec.utterances}
    expected = {
        u.index: (u.expect_interrupt, "scenario") if u.expect_interrupt is not None else (fire[u.index] is not None, "auto")
        for u in rec.utterances
    }
    window_s = (rec.vad.window_size * rec.vad.frame_ms / 1000.0) if rec.vad else 1.5
    interrupts: list[InterruptMetric] = []
    hit: set[int] = set()
    for e in rec.log:
        if e.source != "server" or e.type != "response.interrupted":
            continue
        cands = [u for u in rec.utterances if u.onset_s <= e.t <= u.offset_s + window_s + ATTRIBUTION_SLACK_S]
        u = max(cands, key=lambda c: c.onset_s) if cands else None
        tr = rec.responses.get(e.response_id or "")
        audio_end = tr.audio_end_ms if tr else e.fields.get("audio_end_ms")
        played = _played_ms(rec, float("-inf"), e.t, e.response_id) if e.response_id else 0.0
        after = _played_ms(rec, e.t, float("inf"), e.response_id) if e.response_id else 0.0
        false = u is None or not expected[u.index][0]
        latency = floor = overhead = talk_over = None
        if u is not None:
            hit.add(u.index)
            latency = (e.t - u.onset_s) * 1000.0
            talk_over = _played_ms(rec, u.onset_s, e.t)
            floor_t = floor_fire_t(rec, u, e.response_id, labels)
            if floor_t is not None:
                floor = (floor_t - u.onset_s) * 1000.0
                overhead = latency - floor
        interrupts.append(
            InterruptMetric(
                t=round(e.t, 4),
                response_id=e.response_id,
                utterance=u.index if u else None,
                onset_s=_r(u.onset_s, 4) if u else None,
                latency_ms=_r(latency),
                floor_ms=_r(floor),
                overhead_ms=_r(overhead),
                audio_end_ms=audio_end,
                played_ms=round(played, 1),
                truncation_error_ms=_r(audio_end - played) if audio_end is not None else None,
                talk_over_ms=_r(talk_over),
                audio_after_interrupt_ms=round(after, 1),
                deltas_after_interrupt=tr.deltas_after_interrupt if tr else 0,
                false=false,
            )
        )
    utts = []
    for u in rec.utterances:
        exp, src = expected[u.index]
        reply = [
            tr.first_play_t
            for tr in rec.responses.values()
            if tr.created_t is not None and tr.created_t > u.onset_s and tr.first_play_t is not None
        ]
        v2v = (min(reply) - u.offset_s) * 1000.0 if reply else None
        frames = speech_frames_between(labels, u.onset_s, min(u.offset_s + 0.3, _next_onset(rec, u)))
        utts.append(
            UtteranceMetric(
                index=u.index,
                utterance=u.utterance,
                text=u.text,
                onset_s=round(u.onset_s, 4),
                offset_s=round(u.offset_s, 4),
                expected_interrupt=exp,
                expectation_source=src,
                interrupted=u.index in hit,
                speech_frames=frames,
                floor_ms=_r((fire[u.index] - u.onset_s) * 1000.0) if fire[u.index] is not None else None,
                voice_to_voice_ms=_r(v2v),
            )
        )
    statuses = [str(e.fields.get("status")) for e in rec.log if e.source == "server" and e.type == "response.done"]
    return Metrics(
        interrupts=interrupts,
        utterances=utts,
        false_interrupts=sum(1 for i in interrupts if i.false),
        missed_interrupts=sum(1 for u in utts if u.expected_interrupt and not u.interrupted),
        transcripts=list(rec.transcripts),
        statuses=statuses,
    )


@dataclass(frozen=True)
class Check:
    """One expectation and whether it held."""

    name: str
    ok: bool
    detail: str


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def _worst_within(name: str, what: str, values_ms: list[float], bound_ms: float) -> Check:
    """The largest of ``values_ms`` is at most ``bound_ms`` (fails when there is none to measure)."""
    worst = max(values_ms, default=None)
    return Check(name, worst is not None and worst <= bound_ms, f"{what} {worst} ms vs bound {bound_ms:g} ms")


def check_expectations(m: Metrics, expect: Expect) -> list[Check]:
    """Evaluate a scenario's ``expect`` block against the metrics."""
    out: list[Check] = []
    n = len(m.interrupts)
    if expect.interrupt is not None:
        ok = (n > 0) == expect.interrupt
        out.append(Check("interrupt", ok, f"expected {'an' if expect.interrupt else 'no'} interrupt, got {n}"))
    if expect.max_latency_ms is not None:
        lat = [i.latency_ms for i in m.interrupts if i.latency_ms is not None]
        out.append(_worst_within("max_latency_ms", "latency", lat, expect.max_latency_ms))
    if expect.max_overhead_ms is not None:
        real = [i for i in m.interrupts if not i.false]
        over = [i.overhead_ms for i in real if i.overhead_ms is not None]
        worst = max(over, default=None)
        ok = bool(real) and len(over) == len(real) and worst is not None and worst <= expect.max_overhead_ms
        detail = (
            "no attributed interrupt to measure" if not real
            else "an interrupt has no floor (the window rule never fires on the user's speech alone)" if len(over) != len(real)
            else f"overhead {worst} ms vs bound {expect.max_overhead_ms:g} ms"
        )
        out.append(Check("max_overhead_ms", ok, detail))
    if expect.transcript_contains:
        heard = _norm(" ".join(m.transcripts))
        missing = [w for w in expect.transcript_contains if _norm(w) not in heard]
        out.append(Check("transcript_contains", not missing, f"missing {missing} in {m.transcripts}" if missing else "all found"))
    if expect.transcript_excludes:
        heard = f" {_norm(' '.join(m.transcripts))} "
        found = [w for w in expect.transcript_excludes if f" {_norm(w)} " in heard]
        out.append(Check("transcript_excludes", not found, f"{found} heard in {m.transcripts}" if found else "none heard"))
    if expect.max_voice_to_voice_ms is not None:
        v2v = [u.voice_to_voice_ms for u in m.utterances if u.voice_to_voice_ms is not None]
        out.append(_worst_within("max_voice_to_voice_ms", "voice-to-voice", v2v, expect.max_voice_to_voice_ms))
    if expect.user_turns is not None:
        got = len(m.transcripts)
        out.append(Check("user_turns", got == expect.user_turns, f"expected {expect.user_turns}, got {got}: {m.transcripts}"))
    for name, attr in (
        ("max_audio_after_interrupt_ms", "audio_after_interrupt_ms"),
        ("max_talk_over_ms", "talk_over_ms"),
        ("max_truncation_error_ms", "truncation_error_ms"),
    ):
        bound = getattr(expect, name)
        if bound is None:
            continue
        vals = [abs(v) for i in m.interrupts if (v := getattr(i, attr)) is not None]
        worst = max(vals, default=0.0)
        out.append(Check(name, worst <= bound, f"worst {worst:g} ms vs bound {bound:g} ms"))
    if expect.false_interrupts is not None:
        out.append(Check("false_interrupts", m.false_interrupts == expect.false_interrupts, f"expected {expect.false_interrupts}, got {m.false_interrupts}"))
    if expect.missed_interrupts is not None:
        out.append(Check("missed_interrupts", m.missed_interrupts == expect.missed_interrupts, f"expected {expect.missed_interrupts}, got {m.missed_interrupts}"))
    for status in expect.statuses_include:
        out.append(Check(f"status:{status}", status in m.statuses, f"response.done statuses {m.statuses}"))
    return out
