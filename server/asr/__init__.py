"""ASR engines behind one small interface, looked up by name.

- :func:`get_asr_engine` builds an engine on first use (imports and model loads
  are lazy) and caches it per ``(name, options)``.
- :func:`engine_for_model` maps the cloud model name a config asks for
  (``audio_config.asr.model``) to a local engine name, see ``MODEL_TO_ENGINE``.

Built-in engines: ``whisper`` (default, faster-whisper ``tiny.en``),
``pocketsphinx`` (true streaming) and ``vosk`` (needs a model directory you
provide).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.asr.base import AsrEngine

__all__ = [
    "AsrEngine",
    "AsrSpec",
    "DEFAULT_ASR_ENGINE",
    "MODEL_TO_ENGINE",
    "UnknownAsrEngineError",
    "available_asr_engines",
    "engine_for_model",
    "engine_spec",
    "get_asr_engine",
    "register_asr_engine",
]

DEFAULT_ASR_ENGINE = "whisper"

#: Cloud transcription model names (lower-cased) and the local engine that
#: stands in for each. Names not listed fall back to ``DEFAULT_ASR_ENGINE``.
MODEL_TO_ENGINE: Mapping[str, str] = {
    "azure/ai-transcription": "whisper",
    "azure/ai-speech": "whisper",
    "whisper-1": "whisper",
    "whisper": "whisper",
    "openai/whisper": "whisper",
    "gpt-4o-transcribe": "whisper",
    "gpt-4o-mini-transcribe": "whisper",
    "pocketsphinx": "pocketsphinx",
    "vosk": "vosk",
}

AsrFactory = Callable[..., AsrEngine]


class UnknownAsrEngineError(ValueError):
    """Raised for an engine name nobody registered."""


_factories: dict[str, AsrFactory] = {}
_instances: dict[tuple[str, tuple[tuple[str, Any], ...]], AsrEngine] = {}
_lock = threading.RLock()


def register_asr_engine(name: str, factory: AsrFactory) -> None:
    """Register ``factory(**options) -> AsrEngine`` under ``name``.

    Re-registering a name replaces the factory and drops cached instances of it.
    """
    if not name or name != name.strip():
        raise ValueError(f"ASR engine name must be a non-empty word, got {name!r}")
    with _lock:
        _factories[name] = factory
        for key in [k for k in _instances if k[0] == name]:
            del _instances[key]


def available_asr_engines() -> list[str]:
    """Names of the registered engines, sorted. Listing one does not import it."""
    with _lock:
        return sorted(_factories)


def _options_key(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    key = tuple(sorted(options.items()))
    try:
        hash(key)
    except TypeError as exc:
        raise TypeError(
            f"ASR engine options must be hashable values (str, int, float, bool, None); got {options!r}"
        ) from exc
    return key


def get_asr_engine(name: str, **options: Any) -> AsrEngine:
    """Return the shared engine ``name`` built with ``options``.

    The first call for a ``(name, options)`` pair builds it (this may load a
    model: call it from a worker thread, not the event loop); later calls return
    the same object. Thread-safe.
    """
    key = (name, _options_key(options))
    with _lock:
        engine = _instances.get(key)
        if engine is not None:
            return engine
        factory = _factories.get(name)
        if factory is None:
            raise UnknownAsrEngineError(
                f"unknown ASR engine {name!r}; available: {', '.join(available_asr_engines())}. "
                "Set audio_config.asr.engine (or the server's ASR override) to one of those."
            )
        # Built under the lock so two threads never load the same model twice.
        engine = factory(**options)
        _instances[key] = engine
        return engine


@dataclass(frozen=True)
class AsrSpec:
    """What rebuilds an engine in another process: a built-in engine's name and its options.

    Picklable (plain names and values), so a worker process
    (:mod:`server.asr_processes`) builds its own copy with :meth:`build`.
    """

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def build(self) -> AsrEngine:
        """This process's shared engine for the spec (loads the model on first use)."""
        return get_asr_engine(self.name, **dict(self.options))

    def with_options(self, **extra: Any) -> "AsrSpec":
        """The same spec with ``extra`` options added (replacing same-named ones)."""
        return AsrSpec(self.name, _options_key({**dict(self.options), **extra}))


def engine_spec(engine: AsrEngine) -> AsrSpec | None:
    """The spec this registry built ``engine`` from, when a fresh process can rebuild it.

    None for an engine another process cannot reproduce or share the work of:
    one built by a factory registered at run time (a fresh process only knows
    the built-in ones), one this registry did not build, and one that keeps
    state between calls (``engine.stateless`` false or missing: its calls for
    one utterance must reach the same object).
    """
    if not getattr(engine, "stateless", False):
        return None
    with _lock:
        for (name, options), built in _instances.items():
            if built is engine:
                builtin = _factories.get(name) is _BUILTIN.get(name)
                return AsrSpec(name, options) if builtin else None
    return None


def engine_for_model(model: str | None, override: str | None = None) -> str:
    """Name of the local engine that transcribes for cloud model ``model``.

    ``override`` (an engine name chosen by the user) wins when given and must be
    registered. Otherwise ``model`` is looked up case-insensitively in
    ``MODEL_TO_ENGINE``; unknown or missing models get ``DEFAULT_ASR_ENGINE``.
    """
    if override:
        if override not in available_asr_engines():
            raise UnknownAsrEngineError(
                f"ASR engine override {override!r} is not registered; "
                f"choose one of: {', '.join(available_asr_engines())}"
            )
        return override
    if not model:
        return DEFAULT_ASR_ENGINE
    return MODEL_TO_ENGINE.get(model.strip().lower(), DEFAULT_ASR_ENGINE)


def _lazy(module: str, attr: str) -> AsrFactory:
    """A factory that imports ``server.asr.<module>`` only when first used."""

    def factory(**options: Any) -> AsrEngine:
        cls = getattr(importlib.import_module(f"server.asr.{module}"), attr)
        return cls(**options)

    factory.__name__ = f"{module}.{attr}"
    return factory


register_asr_engine("whisper", _lazy("whisper", "WhisperAsr"))
register_asr_engine("pocketsphinx", _lazy("pocketsphinx", "PocketSphinxAsr"))
register_asr_engine("vosk", _lazy("vosk", "VoskAsr"))

#: The factories every fresh process registers on import (what :func:`engine_spec` can rebuild).
_BUILTIN: dict[str, AsrFactory] = dict(_factories)
