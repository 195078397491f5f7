"""Engine ``espeak``: pyttsx3 driving eSpeak NG, pip-only.

Library: the ``espeakng-loader`` wheel bundles ``libespeak-ng`` and its data.
We dlopen that library with ``RTLD_GLOBAL`` and point ``ESPEAK_DATA_PATH`` at
its data *before* pyttsx3's espeak driver loads ``libespeak-ng.so.1``; the
dynamic loader then hands pyttsx3 the already-loaded copy (matched by soname),
so no apt package is needed. Without the wheel, a system libespeak-ng is used.

pyttsx3 quirks this module works around (measured with pyttsx3 2.99):

* ``runAndWait()`` returns *before* the file is written: the driver queues its
  own ``endLoop`` ahead of the synthesis, and eSpeak synthesises on its own
  thread (the WAV appeared ~0.3 s after ``runAndWait`` returned for a long
  text). We wait for the ``finished-utterance`` notification instead.
* The driver's callback, running on eSpeak's thread, keeps touching driver
  state (busy flag, loop flag) *after* it notifies. Starting the next
  utterance in that window can stop the next loop before it starts. We call
  ``espeak_Synchronize`` (waits, without the GIL, until eSpeak's command
  has fully returned) before releasing the lock.
* eSpeak applies ``setProperty("rate"/"volume")`` asynchronously; while that
  is pending ``espeak_IsPlaying`` is true, so the ``endLoop`` that
  ``runAndWait`` queues calls ``driver.stop()``, which flags the *next*
  utterance as stopped: it is cancelled and reported with
  ``completed=False`` (reproduced with 4 threads: 4 of 16 calls lost). We
  synchronise after setting properties, and set them only when they change.
* On a fresh driver the property commands are queued and run inside
  ``runAndWait`` just before its own ``endLoop``, so the same stop flag is
  left set and kills the *second* utterance. We first bring the driver to
  its steady state with one bare utterance, and retry once if an utterance
  we never stopped still reports ``completed=False``.
* Errors inside queued commands (e.g. an unknown voice) are swallowed into an
  ``error`` notification: we collect them and raise.
* If eSpeak ever fails to report the end, ``runAndWait`` would spin forever:
  a watchdog ends the loop and the call raises :class:`TtsError`.
* The driver prints "Audio saved to ..." on every file: silenced in the
  driver module only.
* eSpeak seeds its noise generator (aspiration, fricatives) with the time of
  day in seconds when it initialises, so the same text sounded different
  from one process to the next: the simulator's echo, and with it its
  transcripts, changed between identical runs. Each utterance now starts
  from a seed made from its text (``espeak_ng_SetRandSeed``, eSpeak NG >= 1.52).
  What remains is state eSpeak carries from one utterance to the next (the
  phase of its pitch "flutter", breath resonators; wavegen.c statics, not
  reachable through its API): the same sequence of utterances gives the same
  audio in every process, and the synthesis cache answers repeats.
* The driver's loop polls for the end of synthesis with ``sleep(0.01)``;
  eSpeak needs 3-14 ms for a sentence, so the 10 ms steps wasted up to half
  of each call (~0.1 s of a simulated session). The driver module gets a
  ``time`` whose ``sleep`` waits at most 1 ms.

eSpeak can be initialised once per process, so all :class:`EspeakEngine`
instances share one pyttsx3 engine behind one lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import check_sample_rate, to_pcm16
from .base import TtsError, Voice
from .voices import espeak_voice_for

__all__ = ["EspeakEngine", "load_espeak_library", "EspeakLibrary"]

log = logging.getLogger(__name__)

NATIVE_RATE = 22050  # what the pyttsx3 espeak driver writes
DEFAULT_WPM = 175


@dataclass(frozen=True)
class EspeakLibrary:
    """Which libespeak-ng the process uses and where its data lives."""

    path: str
    data_path: str | None
    source: str  # "espeakng-loader" or "system"


_library: EspeakLibrary | None = None
_library_lock = threading.Lock()


def load_espeak_library() -> EspeakLibrary:
    """Make libespeak-ng loadable for pyttsx3 (idempotent). Raises TtsError with
    install advice if neither the wheel nor a system library is present."""
    global _library
    with _library_lock:
        if _library is not None:
            return _library
        try:
            import espeakng_loader
        except ImportError:
            espeakng_loader = None
        if espeakng_loader is not None:
            lib_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
            # The data must match the library version, so the wheel's data wins
            # over any ESPEAK_DATA_PATH inherited from the environment.
            os.environ["ESPEAK_DATA_PATH"] = data_path
            ctypes.CDLL(lib_path, mode=ctypes.RTLD_GLOBAL)
            _library = EspeakLibrary(lib_path, data_path, "espeakng-loader")
        else:
            found = ctypes.util.find_library("espeak-ng")
            if not found:
                raise TtsError(
                    "eSpeak NG library not found: `pip install espeakng-loader` "
                    "(bundles it) or `apt-get install espeak-ng`"
                )
            ctypes.CDLL(found, mode=ctypes.RTLD_GLOBAL)
            _library = EspeakLibrary(found, os.environ.get("ESPEAK_DATA_PATH"), "system")
        log.info("espeak: using %s (%s)", _library.path, _library.source)
        return _library


class _ShortPollTime:
    """``time`` as pyttsx3's espeak driver sees it: polls every 1 ms instead of 10 ms."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.001))


class _Pyttsx3Session:
    """The one pyttsx3 engine of the process, used by one caller at a time."""

    def __init__(self) -> None:
        load_espeak_library()
        import pyttsx3
        import pyttsx3.drivers._espeak as espeak_c
        import pyttsx3.drivers.espeak as espeak_driver

        # The driver announces every saved file on stdout; our stdout is the server log.
        espeak_driver.print = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        espeak_driver.time = _ShortPollTime  # type: ignore[attr-defined]
        self._espeak_c = espeak_c
        # The same library pyttsx3 loaded (same path, so dlopen returns the same handle).
        self._set_rand_seed = getattr(ctypes.CDLL(load_espeak_library().path), "espeak_ng_SetRandSeed", None)
        self.engine = pyttsx3.init("espeak")
        self.lock = threading.Lock()
        self._done = threading.Event()
        self._completed = False
        self._errors: list[BaseException] = []
        self._wpm: int | None = None
        self._aborted = False
        self.engine.connect("finished-utterance", self._on_finished)
        self.engine.connect("error", self._on_error)
        self._tmp = tempfile.TemporaryDirectory(prefix="refinery-espeak-")
        self.wav_path = Path(self._tmp.name) / "utterance.wav"

    def _on_finished(self, name: Any = None, completed: bool = True, **_: Any) -> None:
        self._completed = bool(completed)
        self._done.set()

    def _on_error(self, name: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        self._errors.append(exception or RuntimeError("unknown pyttsx3 error"))

    def _abort(self) -> None:
        """Watchdog: break a ``runAndWait`` loop that never ends."""
        self._aborted = True
        try:
            self.engine.stop()
            self.engine.endLoop()
        except RuntimeError:
            pass  # loop already ended
        self._done.set()

    def voices(self) -> list[str]:
        with self.lock:
            return [v.id for v in self.engine.getProperty("voices")]

    def _utter(self, text: str, timeout_s: float) -> tuple[bool, bool]:
        """One save_to_file + runAndWait, waited for properly.
        Returns (finished in time, completed rather than cancelled)."""
        self._done.clear()
        self._completed = False
        self._aborted = False
        self.wav_path.unlink(missing_ok=True)
        self.engine.save_to_file(text, str(self.wav_path))
        watchdog = threading.Timer(timeout_s, self._abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.engine.runAndWait()
            finished = self._done.wait(timeout_s)
        finally:
            watchdog.cancel()
        # Let eSpeak's thread leave the driver callback before anyone starts again.
        self._espeak_c.Synchronize()
        return finished and not self._aborted, self._completed

    def _settle(self) -> None:
        """Bring the driver to its steady state before real work.

        A fresh (or aborted) driver is "busy": commands queue up and run inside
        runAndWait, right before runAndWait's own endLoop, with no chance to let
        eSpeak apply them first. One bare utterance (no property changes) leaves
        it idle, after which commands run immediately and we can synchronise.
        """
        if self.engine.isBusy():
            self._espeak_c.Synchronize()
            self._utter("ready", 10.0)
            self._errors.clear()

    def synthesize(self, text: str, voice_id: str, wpm: int, timeout_s: float) -> np.ndarray:
        """Text -> int16 samples at 22050 Hz. Serialised on the session lock."""
        with self.lock:
            self._settle()
            self._errors.clear()
            eng = self.engine
            eng.setProperty("voice", voice_id)
            if self._wpm != wpm:
                eng.setProperty("rate", wpm)
                eng.setProperty("volume", 1.0)
                self._wpm = wpm
            # eSpeak queues parameter changes on its own thread; while they are
            # pending it reports "playing", and runAndWait's endLoop would then
            # cancel the utterance we are about to start. Let them land first.
            self._espeak_c.Synchronize()
            if self._errors:
                raise TtsError(f"espeak: cannot use voice {voice_id!r}: {self._errors[0]}")
            for attempt in (1, 2):
                if self._set_rand_seed is not None:
                    self._set_rand_seed(ctypes.c_long(zlib.crc32(text.encode("utf-8"))))
                finished, completed = self._utter(text, timeout_s)
                if self._errors:
                    raise TtsError(f"espeak: synthesis failed for voice {voice_id!r}: {self._errors[0]}")
                if not finished:
                    raise TtsError(
                        f"espeak: no audio after {timeout_s:.0f} s for {len(text)} characters "
                        "(eSpeak did not report the end of the utterance)"
                    )
                if completed:
                    break
                # A stop flag left over in the pyttsx3 driver cancelled an utterance
                # nobody stopped; reporting the cancel cleared it, so one retry suffices.
                log.warning("espeak: pyttsx3 cancelled an utterance on its own (attempt %d); retrying", attempt)
            else:
                raise TtsError("espeak: pyttsx3 cancelled the utterance twice; giving up")
            if not self.wav_path.exists():
                raise TtsError("espeak: pyttsx3 reported the end but wrote no file")
            data, rate = sf.read(str(self.wav_path), dtype="int16")
        if rate != NATIVE_RATE:
            raise TtsError(f"espeak: expected {NATIVE_RATE} Hz from pyttsx3, got {rate} Hz")
        return data


_session: _Pyttsx3Session | None = None
_session_lock = threading.Lock()


def _get_session() -> _Pyttsx3Session:
    global _session
    with _session_lock:
        if _session is None:
            _session = _Pyttsx3Session()
        return _session


class EspeakEngine:
    """pyttsx3 + eSpeak NG. Many voices and accents, robotic but tiny and fast
    (real-time factor ~0.004 on the shared 2-core dev box). Native rate 22050 Hz, resampled with soxr."""

    name = "espeak"
    native_rate = NATIVE_RATE

    def __init__(self, words_per_minute: int = DEFAULT_WPM, timeout_s: float = 20.0) -> None:
        if not 80 <= words_per_minute <= 450:
            raise ValueError(f"words_per_minute must be 80..450 (eSpeak's range), got {words_per_minute}")
        self.words_per_minute = words_per_minute
        self.timeout_s = timeout_s
        self._session = _get_session()

    @property
    def library(self) -> EspeakLibrary:
        """The libespeak-ng in use (reported in diagnostics)."""
        return load_espeak_library()

    def voice_for(self, language: str | None, cloud_voice: str | None) -> Voice:
        """See :func:`server.tts.voices.espeak_voice_for`."""
        return espeak_voice_for(language, cloud_voice, engine=self.name)

    def list_voices(self) -> list[str]:
        """eSpeak voice identifiers available (e.g. ``gmw/en-us``)."""
        return self._session.voices()

    def synthesize(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        """PCM16 mono at ``sample_rate``; empty bytes for blank text."""
        check_sample_rate(sample_rate)
        if voice.engine != self.name:
            raise ValueError(
                f"voice {voice.label} belongs to engine {voice.engine!r}, not {self.name!r}: "
                f"get one from {self.name} engine's voice_for()"
            )
        if not text or not text.strip():
            return b""
        # Long texts synthesise at ~200x real time; the timeout only catches a stuck eSpeak.
        timeout = max(self.timeout_s, len(text) * 0.02)
        samples = self._session.synthesize(text, voice.voice_id, self.words_per_minute, timeout)
        return to_pcm16(samples, NATIVE_RATE, sample_rate)
