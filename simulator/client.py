"""The simulated client of the service protocol, as a pure state machine.

It plays the part of the SDK / tutorial page: it receives server events with
their times, plays response audio on a simulated :class:`~simulator.speaker.Speaker`,
reports ``playback.started`` / ``playback.stopped`` as its speaker starts and
drains, stops the speaker the moment ``response.interrupted`` arrives and then
sends ``response.cancel``, and streams the microphone (user speech + residual
echo + noise) in fixed chunks. It never reads a clock or touches a socket: a
driver feeds it events (``on_event``) and asks, at each tick, what to send
(``control`` and ``mic_chunk``). Ticks and event times are in seconds on the
run's clock; internally everything is a sample index at 16 kHz.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.protocol import (
    AudioAppend,
    BadFrame,
    ClientMessage,
    PlaybackStarted,
    PlaybackStopped,
    Pong,
    ResponseCancel,
    TextInput,
    client_message_type,
    decode_pcm16,
)
from server.vad import pcm16_to_float
from simulator.audio import Clip, load_clip
from simulator.echo import (
    SAMPLE_RATE,
    EchoPath,
    EchoSettings,
    Microphone,
    NoiseSettings,
    NoiseSource,
    db_to_gain,
)
from simulator.scenario import Action, Scenario, Timing, Utterance
from simulator.speaker import Speaker


@dataclass(frozen=True)
class LogEntry:
    """One event of the run: received from the server or sent by the client (no audio payloads)."""

    t: float
    source: str  # "server" | "client"
    type: str
    response_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlacedUtterance:
    """One stretch of user speech as it landed in the microphone (seconds on the run clock).

    A clip with several speech spans in its sidecar (a whole recorded session)
    gives one entry per span; ``utterance`` is the scenario's utterance index.
    """

    index: int
    utterance: int
    wav: str
    text: str
    start_s: float
    onset_s: float
    offset_s: float
    expect_interrupt: bool | None
    timing: str


@dataclass
class ResponseTrack:
    """What the client saw of one response."""

    response_id: str
    created_t: float | None = None
    first_delta_t: float | None = None
    first_play_t: float | None = None
    playback_started_t: float | None = None  # first playback.started sent while it played
    audio_done_t: float | None = None
    done_t: float | None = None
    status: str | None = None
    interrupted_t: float | None = None
    audio_end_ms: int | None = None
    received_ms: float = 0.0
    deltas_after_interrupt: int = 0
    bytes_after_interrupt: int = 0  # PCM bytes of those deltas
    roles: list[str] = field(default_factory=list)


def _find_output_rate(session: Any) -> int | None:
    # The session object is ours to shape; accept any key that names an output rate.
    if not isinstance(session, dict):
        return None
    for key, value in session.items():
        k = str(key).lower()
        if isinstance(value, dict):
            found = _find_output_rate(value)
            if found:
                return found
        elif "output" in k and "rate" in k and isinstance(value, int) and 8000 <= value <= 48000:
            return value
    return None


def noise_settings(scenario: Scenario) -> NoiseSettings:
    """The noise of ``scenario``: its seed (when set) picks the pink noise or the file's starting point."""
    nm = scenario.noise
    if nm.seed is None:
        return NoiseSettings(nm.db, nm.file)
    offset = int(np.random.default_rng(nm.seed).integers(0, 60 * SAMPLE_RATE))  # wraps on shorter files
    return NoiseSettings(nm.db, nm.file, seed=nm.seed, offset=offset if nm.file is not None else 0)


class SimClient:
    """The protocol client of one scenario run (sans-I/O)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        output_rate: int = SAMPLE_RATE,
        turn_silence_s: float = 0.0,
        clips: dict[str, Clip] | None = None,
    ) -> None:
        self.scenario = scenario
        # Quiet must outlast the server's end-of-turn silence (plus its reply latency)
        # before a run can be over: the user's last words may still start a turn.
        self.settle_s = max(scenario.tail_s, turn_silence_s + 1.0 if turn_silence_s else 0.0)
        self.sr = SAMPLE_RATE
        self.chunk = scenario.client.chunk_ms * self.sr // 1000
        self.output_rate = output_rate
        e = scenario.echo
        self.echo_settings = EchoSettings(e.delay_ms, e.gain, e.aec_erle_db, e.room_rt60_ms)
        self.speaker = Speaker(block=self.chunk)
        self.mic = Microphone(
            EchoPath(self.echo_settings, self.sr),
            NoiseSource(noise_settings(scenario), self.sr),
        )
        clips = clips or {}
        self._utts: list[tuple[int, Utterance, Clip]] = []
        notes: list[str] = []
        for i, u in enumerate(scenario.utterances):
            clip = clips.get(str(u.wav)) or load_clip(u.wav, u.text, self.sr)
            if clip.speech_source != "sidecar":
                spans = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in clip.speech)
                notes.append(
                    f"{u.wav.name} has no sidecar: its speech spans ({spans}) come from the "
                    + ("neural VAD (Silero)" if clip.speech_source == "silero" else "energy detector (silero-vad missing)")
                    + f", not from a person; add {u.wav.with_suffix('.json').name} to fix them"
                )
            self._utts.append((i, u, clip))
        self._actions: list[tuple[int, Action]] = list(enumerate(scenario.actions))
        self._due: list[tuple[float, int, Action]] = []
        self.placed: list[PlacedUtterance] = []
        self.occurrences: dict[str, list[tuple[float, str | None]]] = {}
        self.log: list[LogEntry] = []
        self.responses: dict[str, ResponseTrack] = {}
        self.transcripts: list[str] = []
        self.vad_enabled: bool | None = None
        self.session: dict[str, Any] = {}
        self.warnings: list[str] = notes
        self.stops: list[tuple[float, str | None]] = []
        self._outbox: list[tuple[ClientMessage, str | None]] = []
        self._future: list[tuple[int, str, str | None]] = []  # speaker events queued ahead (sample, name, role)
        self._interrupted: set[str] = set()
        self._active: set[str] = set()
        self._playing_rid: str | None = None
        self._was_playing = False
        self._last_server_t = 0.0
        self.audio_chunks_sent = 0
        # Fingerprints of the audio both ways: equal digests mean two runs heard
        # and said exactly the same thing, not merely produced the same events.
        self.mic_digest = hashlib.sha256()
        self.received_digest = hashlib.sha256()
        self._resolve()  # items at absolute times are known now

    # -- helpers ---------------------------------------------------------------

    def _n(self, t: float) -> int:
        return int(round(t * self.sr))

    def _t(self, n: int) -> float:
        return n / self.sr

    def _track(self, rid: str) -> ResponseTrack:
        if rid not in self.responses:
            self.responses[rid] = ResponseTrack(rid)
        return self.responses[rid]

    def _sent(self, t: float, msg: ClientMessage, rid: str | None = None, **fields: Any) -> None:
        self.log.append(LogEntry(t, "client", client_message_type(msg), rid, fields))

    def _occur(self, name: str, t: float, role: str | None = None) -> None:
        self.occurrences.setdefault(name, []).append((t, role))
        self._resolve()

    def _anchor_time(self, timing: Timing) -> float | None:
        if timing.at is not None:
            return timing.at
        assert timing.after is not None
        if timing.after == "utterance.end":
            ends = [p.offset_s for p in self.placed if p.utterance == timing.nth - 1]
            return max(ends) + timing.delay_s if ends else None
        seen = [t for t, role in self.occurrences.get(timing.after, []) if timing.role is None or role == timing.role]
        if len(seen) < timing.nth:
            return None
        return seen[timing.nth - 1] + timing.delay_s

    def _resolve(self) -> None:
        progress = True
        while progress:  # placing an utterance can satisfy an `utterance.end` anchor
            progress = False
            for item in list(self._utts):
                i, u, clip = item
                when = self._anchor_time(u)
                if when is None:
                    continue
                self._utts.remove(item)
                self._place(i, u, clip, when)
                progress = True
            for item in list(self._actions):
                j, act = item
                when = self._anchor_time(act)
                if when is not None:
                    self._actions.remove(item)
                    self._due.append((when, j, act))
                    self._due.sort(key=lambda d: (d[0], d[1]))

    def _place(self, i: int, u: Utterance, clip: Clip, when: float) -> None:
        start = self._n(when)
        if start < self.mic.next_sample:
            # The anchor was seen after the mic had produced that audio (a negative delay
            # that reaches into the past): speak as soon as possible and say so.
            self.warnings.append(
                f"utterance {i} ({u.describe()}) wanted t={when:.3f} s but the microphone was already at "
                f"{self._t(self.mic.next_sample):.3f} s; placed there instead"
            )
            start = self.mic.next_sample
        self.mic.place(start, clip.samples * db_to_gain(u.gain_db), speech=bool(clip.speech))
        s = self._t(start)
        for (on, off), text in zip(clip.speech, clip.span_texts or (clip.text,) * len(clip.speech)):
            self.placed.append(
                PlacedUtterance(
                    len(self.placed), i, str(u.wav), text or clip.text, s, s + on, s + off, u.expect_interrupt, u.describe()
                )
            )

    # -- inputs ----------------------------------------------------------------

    def on_event(self, t: float, event: dict[str, Any]) -> None:
        """A server event received at time ``t`` (seconds)."""
        kind = str(event.get("type", ""))
        rid = event.get("response_id")
        rid = str(rid) if rid is not None else None
        n = max(self._n(t), self.mic.next_sample)
        t = self._t(n) if n != self._n(t) else t
        self._last_server_t = max(self._last_server_t, t)
        fields = {k: v for k, v in event.items() if k not in ("type", "response_id", "audio", "delta", "session")}
        if kind == "response.audio.delta":
            fields = {"role": event.get("role")}
        if kind == "session.created":
            self.session = dict(event.get("session") or {})
            self.vad_enabled = bool((event.get("capabilities") or {}).get("vad_enabled"))
            self.output_rate = _find_output_rate(self.session) or self.output_rate
            fields = {"capabilities": event.get("capabilities")}
        elif kind == "response.created" and rid:
            self._active.add(rid)
            self._track(rid).created_t = t
        elif kind == "response.audio.delta" and rid:
            self._on_audio(n, t, rid, event)
            if rid in self._interrupted:
                fields["after_interrupt"] = True
        elif kind == "response.audio.done" and rid:
            tr = self._track(rid)
            tr.audio_done_t = t
            if rid not in self._interrupted:
                self._occur("playback.expected_end", self._t(max(self.speaker.queue_end, n)))
        elif kind == "response.done" and rid:
            self._active.discard(rid)
            tr = self._track(rid)
            tr.done_t, tr.status = t, event.get("status")
        elif kind == "response.interrupted":
            self._on_interrupted(n, t, rid, event)
        elif kind == "PING":
            self._outbox.append((Pong(), None))
        elif kind == "response.audio_transcript.done":
            self.transcripts.append(str(event.get("text", "")))
        self.log.append(LogEntry(t, "server", kind, rid, fields))
        if kind == "session.created" or kind.startswith("response."):
            self._occur(kind, t, event.get("role") if isinstance(event.get("role"), str) else None)

    def _on_audio(self, n: int, t: float, rid: str, event: dict[str, Any]) -> None:
        tr = self._track(rid)
        if tr.first_delta_t is None:
            tr.first_delta_t = t
        pcm = decode_pcm16(event.get("audio") or event.get("delta") or "")
        if isinstance(pcm, BadFrame):
            self.warnings.append(f"t={t:.3f}: audio delta of response {rid} dropped: {pcm.message}")
            return
        self.received_digest.update(pcm)
        samples = pcm16_to_float(pcm)
        if self.output_rate != self.sr and len(samples):
            import soxr

            samples = soxr.resample(samples, self.output_rate, self.sr).astype(np.float32)
        tr.received_ms += 1000.0 * len(samples) / self.sr
        if rid in self._interrupted:
            tr.deltas_after_interrupt += 1  # a protocol violation by the server: never played
            tr.bytes_after_interrupt += len(pcm)
            return
        role = event.get("role") if isinstance(event.get("role"), str) else None
        seg = self.speaker.enqueue(n, samples, rid, role)
        if role and role not in tr.roles and len(seg.samples):
            tr.roles.append(role)
            # Counted when the speaker gets there (control), unless a stop drops it first.
            self._future.append((seg.start, "playback.agent_started", role))
        if tr.first_play_t is None and len(seg.samples):
            tr.first_play_t = self._t(seg.start)

    def _on_interrupted(self, n: int, t: float, rid: str | None, event: dict[str, Any]) -> None:
        if rid:
            self._interrupted.add(rid)
            tr = self._track(rid)
            tr.interrupted_t = t
            if isinstance(event.get("audio_end_ms"), (int, float)):
                tr.audio_end_ms = int(event["audio_end_ms"])
        # Stop at once, as the tutorial page does, whatever is queued.
        self._stop_speaker(n)
        self.stops.append((t, rid))
        if self.scenario.client.cancel_on_interrupt:
            self._outbox.append((ResponseCancel(), rid))

    def _stop_speaker(self, n: int) -> None:
        self.speaker.stop(n)
        self._future = [f for f in self._future if f[0] < n]

    # -- outputs ---------------------------------------------------------------

    def control(self, t: float) -> list[ClientMessage]:
        """Control messages to send at tick ``t`` (call again after more events at ``t``)."""
        n = self._n(t)
        out: list[ClientMessage] = []
        for msg, rid in self._outbox:
            self._sent(t, msg, rid)
            out.append(msg)
        self._outbox.clear()
        due = [f for f in self._future if f[0] <= n]
        if due:
            self._future = [f for f in self._future if f[0] > n]
            for start, name, role in due:
                self._occur(name, self._t(start), role)
        playing = self.speaker.is_playing(n)
        if playing != self._was_playing:
            self._was_playing = playing
            rid = self._rid_playing(n) if playing else self._playing_rid
            self._playing_rid = rid
            name = "playback.started" if playing else "playback.stopped"
            if self.scenario.client.send_playback_events:
                msg: ClientMessage = PlaybackStarted() if playing else PlaybackStopped()
                self._sent(t, msg, rid)
                out.append(msg)
                if playing and rid and self._track(rid).playback_started_t is None:
                    self._track(rid).playback_started_t = t
            self._occur(name, t)
        while self._due and self._due[0][0] <= t + 1e-9:
            _, _, act = self._due.pop(0)
            if act.type == "text":
                msg = TextInput(act.text or "")
                self._sent(t, msg, None, text=act.text)
            else:
                msg = ResponseCancel()
                # The user's skip key: the page silences its speaker and tells the server.
                rid = self._rid_playing(n)
                self._stop_speaker(n)
                self.stops.append((t, rid))
                self._sent(t, msg, rid, action=True)
            out.append(msg)
        return out

    def _rid_playing(self, n: int) -> str | None:
        for seg in reversed(self.speaker.segments):
            if seg.start <= n < seg.end:
                return seg.response_id
        return None

    def mic_chunk(self, t: float) -> AudioAppend:
        """The microphone audio up to tick ``t`` (one chunk), mixed now."""
        pcm = self.mic.mix(self.speaker, self._n(t)).pcm16()
        self.audio_chunks_sent += 1
        self.mic_digest.update(pcm)
        return AudioAppend(pcm)

    @property
    def pending(self) -> int:
        """Utterances and actions whose time has not come (or whose anchor never happened)."""
        return len(self._utts) + len(self._actions) + len(self._due)

    def unheard(self, t: float) -> list[str]:
        """Ids of the responses still going on at ``t`` (s): open on the server or still playing."""
        n = self._n(t)
        playing = {seg.response_id for seg in self.speaker.segments if seg.start <= n < seg.end}
        return sorted(self._active | {rid for rid in playing if rid})

    def finished(self, t: float) -> bool:
        """True when the scenario has played out: everything fired and the session settled."""
        if self._utts or self._actions or self._due:
            return False
        n = self._n(t)
        last_utt = max((p.offset_s for p in self.placed), default=0.0)
        # A sound that is not speech may still start a turn: wait for the session to settle after it too.
        last_utt = max([last_utt, *(self._t(p.end) for p in self.mic.placements if not p.speech)])
        if t < last_utt:
            return False
        # Every reply is heard out, to its end or its interrupt: a false interrupt can come
        # anywhere in a reply (the echo of its own later sentences). max_duration_s is the cap.
        quiet_since = max(last_utt, self._last_server_t, self._t(self.speaker.queue_end))
        return not self._active and not self.speaker.is_playing(n) and t >= quiet_since + self.settle_s

