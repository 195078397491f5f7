"""TTS engines behind one registry.

    engine_name = engine_for_model("Azure/AI-Speech")      # -> "espeak"
    engine = get_tts_engine(engine_name)
    voice = engine.voice_for("en-GB", "en-GB-LibbyNeural")  # Voice(... voice_id="en-gb-x-rp+f2")
    pcm = engine.synthesize("Hello.", voice, 16000)          # PCM16 mono bytes

Engines are created lazily, once per name, and shared (they serialise their
own calls). Built-ins: ``espeak`` (pyttsx3 + eSpeak NG, many accents) and
``hibari`` (one natural neural voice). See docs/tts.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from .base import TtsEngine, TtsError, Voice
from .normalize import normalize_text, spoken_form, split_sentences

__all__ = [
    "TtsEngine",
    "TtsError",
    "Voice",
    "DEFAULT_ENGINE",
    "MODEL_ENGINES",
    "register_tts_engine",
    "get_tts_engine",
    "available_tts_engines",
    "engine_for_model",
    "synthesize_sentences",
    "normalize_text",
    "spoken_form",
    "split_sentences",
]

DEFAULT_ENGINE = "espeak"

# Cloud TTS model name (case-insensitive) -> local engine. Anything not listed
# goes to DEFAULT_ENGINE. Engine names themselves are accepted as model names
# so a config can say `model: hibari`.
MODEL_ENGINES: dict[str, str] = {
    "azure/ai-speech": "espeak",
    "local/espeak": "espeak",
    "local/pyttsx3": "espeak",
    "pyttsx3": "espeak",
    "local/hibari": "hibari",
}

_factories: dict[str, Callable[[], TtsEngine]] = {}
_instances: dict[str, TtsEngine] = {}
_lock = threading.RLock()  # re-entered when an error message lists the engines
# One lock per engine name so a slow engine load does not block the others.
_create_locks: dict[str, threading.Lock] = {}


def register_tts_engine(name: str, factory: Callable[[], TtsEngine]) -> None:
    """Register (or replace) the factory for engine ``name``. A replaced engine's
    cached instance is dropped so the next :func:`get_tts_engine` builds a new one."""
    if not name or not name.strip() or name != name.strip().lower():
        raise ValueError(f"TTS engine name must be a non-empty lower-case word, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for TTS engine {name!r} must be callable, got {factory!r}")
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)
        _create_locks.setdefault(name, threading.Lock())


def available_tts_engines() -> list[str]:
    """Registered engine names, sorted."""
    with _lock:
        return sorted(_factories)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown TTS engine {name!r}; known engines: {', '.join(available_tts_engines())}")


def get_tts_engine(name: str) -> TtsEngine:
    """The shared instance of engine ``name``, created on first use (thread-safe)."""
    with _lock:
        if name in _instances:
            return _instances[name]
        if name not in _factories:
            raise _unknown(name)
        create_lock = _create_locks[name]
    with create_lock:
        with _lock:
            if name in _instances:
                return _instances[name]
            factory = _factories[name]
        engine = factory()
        with _lock:
            # A concurrent re-registration wins over the instance we just built.
            if _factories.get(name) is factory:
                _instances.setdefault(name, engine)
            return _instances.get(name, engine)


def engine_for_model(
    model: str | None,
    override: str | None = None,
    table: Mapping[str, str] | None = None,
) -> str:
    """Local engine name for a cloud TTS model name.

    ``override`` (e.g. from our config or the command line) wins and must be a
    registered engine. Otherwise ``model`` is looked up case-insensitively in
    ``table`` (default :data:`MODEL_ENGINES`), then as an engine name; anything
    else, including ``None``, maps to :data:`DEFAULT_ENGINE`.
    """
    known = available_tts_engines()
    if override is not None:
        if override not in known:
            raise _unknown(override)
        return override
    mapping = {k.lower(): v for k, v in (MODEL_ENGINES if table is None else table).items()}
    key = (model or "").strip().lower()
    engine = mapping.get(key) or (key if key in known else DEFAULT_ENGINE)
    if engine not in known:
        raise _unknown(engine)
    return engine


def synthesize_sentences(
    engine: TtsEngine,
    text: str,
    voice: Voice,
    sample_rate: int,
    normalize: bool = True,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(sentence, pcm16)`` one sentence at a time, so the first audio can
    go out before the whole answer is synthesised. Each sentence is said in its
    :func:`spoken_form` (markup and unspeakable characters always removed;
    ``normalize``, ``speech_config.normalize_text``, also expands numbers and
    symbols); a sentence with nothing left to say is skipped."""
    for sentence in split_sentences(text):
        spoken = spoken_form(sentence, language=voice.language, expand=normalize)
        if not spoken:
            continue
        pcm = engine.synthesize(spoken, voice, sample_rate)
        if pcm:
            yield sentence, pcm


def _espeak_factory() -> TtsEngine:
    from .espeak import EspeakEngine

    return EspeakEngine()


def _hibari_factory() -> TtsEngine:
    from .hibari import HibariEngine

    return HibariEngine()


register_tts_engine("espeak", _espeak_factory)
register_tts_engine("hibari", _hibari_factory)
