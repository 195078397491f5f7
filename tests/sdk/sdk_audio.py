"""Spoken turns through the real SDK (issue 3). Runs under the SDK's Python 3.12 venv.

Audio goes out with ``send_audio_chunk`` in 30 ms chunks at real-time pace, the
way a microphone delivers it, bracketed by ``start_external_recording()`` /
``stop_external_recording()`` like the SDK's browser bridge (so the server also
gets ``session.update`` and a commit every 0.3 s). Between utterances the
script streams digital silence, as an open microphone does.

Modes:
  speak    --wav, then silence until the response's ``response.done``.
  bargein  --wav; after the response's first audio delta, --lockout-s plus a
           margin of silence, then --interrupt-wav; then silence until the
           new turn's ``response.done``.
  ptt      --wav; at the first audio delta, --interrupt-wav is pushed with
           ``session.send(InputAudioAppendEvent)`` because the SDK's
           ``send_audio_chunk`` drops audio while a push-to-talk response is
           active (so the server's own rule is what gets tested); then silence
           until ``response.done`` plus --tail-s.

Prints one JSON line (see sdk_common); ``client:*`` markers carry ``audio_s``,
the amount of input audio sent so far.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from air.types.distiller.realtime import InputAudioAppendEvent

from sdk_common import base_parser, exception_info, make_client, record, run

SAMPLE_RATE = 16_000
CHUNK_MS = 30
CHUNK_BYTES = SAMPLE_RATE * 2 * CHUNK_MS // 1000
SILENCE = bytes(CHUNK_BYTES)
#: After the lockout, a little more silence so the interrupt clearly starts
#: after it in every clock's view.
LOCKOUT_MARGIN_S = 0.3


def read_pcm16_wav(path: Path) -> bytes:
    """Raw PCM16 mono 16 kHz samples of a WAV file; anything else is an error."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        if shape != (1, 2, SAMPLE_RATE):
            raise ValueError(
                f"{path}: need mono 16-bit 16 kHz PCM, got channels={shape[0]} width={shape[1]} rate={shape[2]}; "
                "convert it (e.g. `sox in.wav -r 16000 -c 1 -b 16 out.wav`)"
            )
        return wav.readframes(wav.getnframes())


def chunks(pcm: bytes) -> Iterator[bytes]:
    """30 ms chunks; the last one is padded with silence to full length."""
    for i in range(0, len(pcm), CHUNK_BYTES):
        yield pcm[i : i + CHUNK_BYTES].ljust(CHUNK_BYTES, b"\0")


class Observer:
    """Records server messages and exposes the moments the sender reacts to."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.first_audio = asyncio.Event()
        self.responses_done = 0
        self.interrupted = False
        self.failed: BaseException | None = None

    def on_message(self, ev: dict[str, Any]) -> None:
        self.result["events"].append(ev)
        kind = ev["type"]
        if kind == "response.audio.delta":
            self.first_audio.set()
        elif kind == "response.done":
            self.responses_done += 1
        elif kind == "response.interrupted":
            self.interrupted = True


async def receive(session: Any, obs: Observer) -> None:
    try:
        while True:
            ev = record(await session.recv())
            if ev["type"] != "PING":
                obs.on_message(ev)
                if ev["type"] == "response.interrupted":
                    # What a client does on an interrupt; the SDK skips the
                    # actual send because the event cleared its response flag.
                    await session.cancel_response()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection loss ends the run, reported
        obs.failed = exc
        obs.result["receive_error"] = exception_info(exc)


class PacedSender:
    """Sends one chunk per 30 ms of wall time, scheduled from a fixed start so
    pacing does not drift; counts audio time sent."""

    def __init__(self, session: Any, result: dict[str, Any]) -> None:
        self.session = session
        self.result = result
        self.sent = 0
        self._t0: float | None = None

    @property
    def audio_s(self) -> float:
        return round(self.sent * CHUNK_MS / 1000, 3)

    def mark(self, kind: str, **fields: Any) -> None:
        self.result["events"].append({"type": f"client:{kind}", "audio_s": self.audio_s, **fields})

    async def send(self, chunk: bytes, *, bypass_sdk_gate: bool = False, paced: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        delay = self._t0 + self.sent * CHUNK_MS / 1000 - loop.time()
        if paced and delay > 0:
            await asyncio.sleep(delay)
        elif not paced:
            self._t0 -= CHUNK_MS / 1000  # a burst does not delay the paced chunks after it
        if bypass_sdk_gate:
            await self.session.send(InputAudioAppendEvent(audio=base64.b64encode(chunk).decode()))
        else:
            await self.session.send_audio_chunk(chunk)
        self.sent += 1


async def stream_until(sender: PacedSender, obs: Observer, done: Any, cap_s: float) -> bool:
    """Stream silence until ``done()`` holds; False if ``cap_s`` of audio passed first."""
    limit = sender.sent + int(cap_s * 1000 / CHUNK_MS)
    while not done():
        if obs.failed is not None or sender.sent >= limit:
            return False
        await sender.send(SILENCE)
    return True


async def main(args: argparse.Namespace, result: dict[str, Any]) -> None:
    speech = read_pcm16_wav(Path(args.wav))
    interrupt = read_pcm16_wav(Path(args.interrupt_wav)) if args.interrupt_wav else b""
    if args.mode in ("bargein", "ptt") and not interrupt:
        raise ValueError(f"--mode {args.mode} needs --interrupt-wav")
    rd = make_client(args).realtime_distiller
    result["created"] = rd.create_project(config_path=args.config, project=args.project)
    async with rd(project=args.project, uuid=args.uuid) as session:
        obs = Observer(result)
        receiver = asyncio.create_task(receive(session, obs))
        sender = PacedSender(session, result)
        await session.start_external_recording()
        try:
            await run_mode(args, session, obs, sender, speech, interrupt)
        finally:
            await session.stop_external_recording()
            sender.mark("stop")
            receiver.cancel()
            try:
                await receiver
            except asyncio.CancelledError:
                pass


async def run_mode(
    args: argparse.Namespace, session: Any, obs: Observer, sender: PacedSender, speech: bytes, interrupt: bytes
) -> None:
    cap = args.max_wait_s
    sender.mark("utterance_start", wav=args.wav)
    for chunk in chunks(speech):
        await sender.send(chunk)
    sender.mark("utterance_end")

    if args.mode == "speak":
        result_ok = await stream_until(sender, obs, lambda: obs.responses_done >= 1, cap)
        sender.result["completed"] = result_ok
        return

    if not await stream_until(sender, obs, obs.first_audio.is_set, cap):
        sender.result["completed"] = False
        return
    sender.mark("first_audio_seen")

    if args.mode == "bargein":
        await stream_until(sender, obs, lambda: False, args.lockout_s + LOCKOUT_MARGIN_S)
        sender.mark("interrupt_start", wav=args.interrupt_wav)
        for chunk in chunks(interrupt):
            await sender.send(chunk)
        sender.mark("interrupt_end")
        # The new turn ends with a response.done after the second response.created
        # (the interrupted response may have finished before or after the interrupt).
        new_turn = lambda: _new_turn_done(sender.result["events"])  # noqa: E731
        sender.result["completed"] = await stream_until(sender, obs, new_turn, cap)
        return

    # ptt: push the interrupt past the SDK's gate while the response is active.
    # Only while the response is active: once response.done is in, the SDK lets
    # audio through again and speech is a legitimate new turn. Audio goes out
    # ahead of real time, so a response is active for well under a second: the
    # utterance goes out as one burst of 30 ms chunks (the protocol allows any
    # pace) so that all of it reaches the server while the response is active.
    sender.mark("interrupt_start", wav=args.interrupt_wav, bypass_sdk_gate=True)
    sent_during_response = 0
    for chunk in chunks(interrupt):
        if obs.responses_done:
            break
        await sender.send(chunk, bypass_sdk_gate=True, paced=False)
        sent_during_response += 1
    sender.mark("interrupt_end", sent_during_response_s=round(sent_during_response * CHUNK_MS / 1000, 3))
    finished = await stream_until(sender, obs, lambda: obs.responses_done >= 1, cap)
    sender.mark("response_done_seen")
    # Keep the microphone open a while: an ignored interrupt must not turn
    # into a late turn either.
    await stream_until(sender, obs, lambda: False, args.tail_s)
    sender.result["completed"] = finished


def _new_turn_done(events: list[dict[str, Any]]) -> bool:
    """A response.done after the second response.created."""
    created = 0
    for ev in events:
        if ev["type"] == "response.created":
            created += 1
        elif ev["type"] == "response.done" and created >= 2:
            return True
    return False


if __name__ == "__main__":
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["speak", "bargein", "ptt"], default="speak")
    parser.add_argument("--wav", required=True)
    parser.add_argument("--interrupt-wav")
    parser.add_argument("--lockout-s", type=float, default=1.0, help="the config's vad.lockout_seconds")
    parser.add_argument("--tail-s", type=float, default=6.0, help="ptt: silence streamed after response.done")
    parser.add_argument("--max-wait-s", type=float, default=90.0, help="audio time to wait for each awaited event")
    run(main, parser.parse_args())
