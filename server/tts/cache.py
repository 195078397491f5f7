"""A process-wide cache of synthesized sentences.

Agents repeat sentences across turns and sessions (the scripted brain always
does), and a synthesis is a pure function of (engine, voice, text, rate) as far
as a listener can tell. eSpeak's output jitters by a few samples from call to
call, so the cache also makes repeated runs in one process (the simulator's
suites, the tests) give the same audio, and so the same event times, whatever
ran before. Bounded by total bytes, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from .base import TtsEngine, Voice

#: About 25 minutes of 16 kHz speech.
DEFAULT_MAX_BYTES = 48 * 1024 * 1024


@dataclass
class SynthesisCache:
    max_bytes: int = DEFAULT_MAX_BYTES
    _items: OrderedDict[tuple, bytes] = field(default_factory=OrderedDict)
    _bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            pcm = self._items.get(key)
            if pcm is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return pcm

    def put(self, key: tuple, pcm: bytes) -> None:
        if len(pcm) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = pcm
            self._bytes += len(pcm)
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


SHARED_CACHE = SynthesisCache()


@dataclass
class CachedTts:
    """A :class:`TtsEngine` that answers repeated requests from a cache."""

    engine: TtsEngine
    cache: SynthesisCache = field(default_factory=lambda: SHARED_CACHE)

    @property
    def name(self) -> str:
        return self.engine.name

    def voice_for(self, language: str | None, cloud_voice: str | None) -> Voice:
        return self.engine.voice_for(language, cloud_voice)

    def synthesize(self, text: str, voice: Voice, sample_rate: int) -> bytes:
        key = (self.engine.name, voice, text, sample_rate)
        pcm = self.cache.get(key)
        if pcm is None:
            pcm = self.engine.synthesize(text, voice, sample_rate)
            self.cache.put(key, pcm)
        return pcm
