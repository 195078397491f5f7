"""What a finished run holds, whichever driver produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.client import SimClient
from simulator.floor import FrameLabels, reference_labels
from simulator.metrics import Check, Metrics, PlayedSegment, RunRecord, VadParams, check_expectations, compute_metrics
from simulator.scenario import Scenario

#: A per-frame detector trace: (t, is_speech, speech frames in window, armed, lockout).
TraceRow = tuple[float, bool, int, bool, bool]


def vad_params(config: Any) -> VadParams | None:
    """Barge-in settings of a ``server.config.ProjectConfig`` (None = push-to-talk)."""
    vad = config.barge_in
    if vad is None:
        return None
    return VadParams(vad.threshold, vad.frame_ms, vad.window_size, vad.lockout_seconds, vad.grace_period_seconds)


def client_for(scenario: Scenario, config: Any) -> SimClient:
    """The scenario's client, set to a ``ProjectConfig``'s TTS output rate and end-of-turn silence."""
    return SimClient(
        scenario,
        output_rate=config.audio_config.tts.sample_rate,
        turn_silence_s=config.audio_config.asr.silence_duration_ms / 1000,
    )


def warning_texts(loaded: Any) -> list[str]:
    """The warnings of a ``server.config.LoadedConfig`` as one line each, for reports."""
    return [w.message for w in loaded.warnings]


@dataclass
class RunResult:
    """A finished run: the client's view, the detector trace (if any) and the verdict."""

    scenario: Scenario
    mode: str  # "fast" or "live"
    config_path: Path
    client: SimClient
    vad: VadParams | None
    end_s: float
    trace: list[TraceRow] = field(default_factory=list)
    trace_source: str = "server"  # "server" (the session's own) or "client" (local WebRTC VAD estimate)
    config_warnings: list[str] = field(default_factory=list)
    server_counters: dict[str, Any] = field(default_factory=dict)
    partial_transcripts: bool = True  # did the server send partial transcripts (off in --fast unless --partials)
    wall_s: float | None = None  # not written to JSON: it would make runs differ
    _labels: FrameLabels | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unheard = self.client.unheard(self.end_s)
        if unheard and self.end_s >= self.scenario.max_duration_s - 1e-9:
            # Say so: an expectation such as false_interrupts: 0 says nothing about the unheard rest.
            self.client.warnings.append(
                f"the run stopped at max_duration_s ({self.scenario.max_duration_s:g} s) before response(s) "
                f"{', '.join(unheard)} played out: what they would still have caused (a false interrupt) was not observed"
            )

    @property
    def labels(self) -> FrameLabels:
        """Reference speech labels of the clean user signal (computed once)."""
        if self._labels is None:
            frame_ms = self.vad.frame_ms if self.vad else 30
            mic = self.client.mic
            self._labels = reference_labels(
                [(p.start, p.samples) for p in mic.placements if p.speech], mic.next_sample, self.client.sr, frame_ms
            )
        return self._labels

    @property
    def speedup(self) -> float | None:
        """Simulated seconds per wall second of this run (None when not timed)."""
        return self.end_s / self.wall_s if self.wall_s else None

    def record(self) -> RunRecord:
        sr = self.client.sr
        segs = [
            PlayedSegment(s.start / sr, s.end / sr, s.response_id, s.role) for s in self.client.speaker.segments
        ]
        return RunRecord(
            log=list(self.client.log),
            utterances=list(self.client.placed),
            segments=segs,
            responses=dict(self.client.responses),
            vad=self.vad,
            transcripts=list(self.client.transcripts),
            send_playback_events=self.scenario.client.send_playback_events,
            labels=self.labels,
        )

    def metrics(self) -> Metrics:
        return compute_metrics(self.record())

    def checks(self) -> list[Check]:
        checks = check_expectations(self.metrics(), self.scenario.expect)
        pending = self.client.pending
        if pending:
            checks.append(
                Check("timeline", False, f"{pending} utterance(s)/action(s) never happened: their anchor event was not seen before {self.end_s:.1f} s")
            )
        return checks

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks())
