"""PocketSphinx 5 with its bundled US English model: truly streaming ASR.

Each utterance gets its own decoder, fed only the audio it has not seen yet, so
a partial costs time proportional to the new audio, not the whole utterance.
Accurate on clear (neural TTS) speech, weak on robotic or human recordings;
see docs/asr.md.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from server.asr.audio import ASR_SAMPLE_RATE, StreamingResampler, check_pcm

log = logging.getLogger(__name__)

# Decoders are heavy (~0.5 s and tens of MB to build): keep a few idle ones.
_MAX_IDLE_DECODERS = 4


@dataclass
class _Stream:
    decoder: Any
    resampler: StreamingResampler
    consumed: int = 0  # bytes of the caller's pcm already fed


class PocketSphinxAsr:
    """The ``pocketsphinx`` engine.

    ``hmm``/``lm``/``dict`` override the bundled en-us model files (paths as
    PocketSphinx takes them); leave them unset for the bundled model.
    """

    name = "pocketsphinx"
    stateless = False

    def __init__(self, hmm: str | None = None, lm: str | None = None, dict: str | None = None) -> None:  # noqa: A002 - PocketSphinx's own option name
        from pocketsphinx import Decoder  # imported here so listing engines stays cheap

        self._decoder_cls = Decoder
        self._config: dict[str, Any] = {"samprate": ASR_SAMPLE_RATE, "loglevel": "FATAL"}
        for key, value in (("hmm", hmm), ("lm", lm), ("dict", dict)):
            if value:
                self._config[key] = value
        self._streams: dict[str, _Stream] = {}
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        # Build one decoder now so a bad model path fails at startup, not mid-call.
        first = self._decoder_cls(**self._config)
        # Live cepstral mean normalisation carries over between utterances, so a
        # recycled decoder would hear the next utterance differently depending on
        # history; every utterance starts from the model's initial CMN instead.
        self._cmn_init = first.get_cmn()
        self._idle.append(first)

    def transcribe(self, utterance_id: str, pcm: bytes, sample_rate: int, *, final: bool) -> str:
        """Feed the part of ``pcm`` not seen before; the hypothesis so far, or the
        final one (and the decoder is released) when ``final``."""
        check_pcm(pcm, sample_rate)
        stream = self._stream_for(utterance_id, pcm, sample_rate)
        tail = pcm[stream.consumed :]
        stream.consumed = len(pcm)
        audio = stream.resampler.feed(tail, last=final)
        if audio:
            stream.decoder.process_raw(audio, False, False)
        if not final:
            return _hyp_text(stream.decoder)
        stream.decoder.end_utt()
        text = _hyp_text(stream.decoder)
        self._release(utterance_id)
        return text

    def forget(self, utterance_id: str) -> None:
        """Stop decoding ``utterance_id`` and recycle its decoder."""
        with self._lock:
            stream = self._streams.get(utterance_id)
        if stream is None:
            return
        stream.decoder.end_utt()
        self._release(utterance_id)

    def _stream_for(self, utterance_id: str, pcm: bytes, sample_rate: int) -> _Stream:
        with self._lock:
            stream = self._streams.get(utterance_id)
        if stream is not None and stream.resampler.sample_rate != sample_rate:
            raise ValueError(
                f"utterance {utterance_id!r} changed sample rate from {stream.resampler.sample_rate} "
                f"to {sample_rate} Hz: call forget() before reusing the id"
            )
        if stream is not None and len(pcm) < stream.consumed:
            # The caller restarted this id with new audio; decoding on would mix two utterances.
            log.warning("utterance %r shrank from %d to %d bytes: restarting it", utterance_id, stream.consumed, len(pcm))
            self.forget(utterance_id)
            stream = None
        if stream is None:
            stream = _Stream(self._take_decoder(), StreamingResampler(sample_rate))
            stream.decoder.set_cmn(self._cmn_init)
            stream.decoder.start_utt()
            with self._lock:
                self._streams[utterance_id] = stream
        return stream

    def _take_decoder(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._decoder_cls(**self._config)

    def _release(self, utterance_id: str) -> None:
        with self._lock:
            stream = self._streams.pop(utterance_id, None)
            if stream is not None and len(self._idle) < _MAX_IDLE_DECODERS:
                self._idle.append(stream.decoder)


def _hyp_text(decoder: Any) -> str:
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""
