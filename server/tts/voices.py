"""Cloud voice names -> local voices.

The cloud names voices like ``en-GB-LibbyNeural``: locale, speaker name,
``Neural``. We keep the locale and the speaker's gender and pick a local eSpeak
voice with the same language and gender. eSpeak has no Australian or Canadian
English, so each English locale gets its own (accent, variant) pair: the four
tutorial locales (en-AU, en-CA, en-GB, en-US) always come out as four different
voices you can tell apart by ear.

Pure functions and tables only: nothing here loads an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import Voice

__all__ = [
    "CloudVoice",
    "parse_cloud_voice",
    "espeak_voice_for",
    "ESPEAK_LOCALES",
    "ESPEAK_LANGUAGES",
    "AZURE_GENDERS",
    "DEFAULT_LOCALE",
]

DEFAULT_LOCALE = "en-US"
DEFAULT_GENDER = "female"


@dataclass(frozen=True)
class EspeakLocale:
    """How one locale is voiced: an eSpeak voice (accent) and the variant used
    for each gender (variants change pitch and formants: ``+f3`` is female)."""

    base: str
    male: str
    female: str


# Known locales. Variants differ between locales that share an accent so that
# e.g. en-US and en-CA never produce the same voice.
ESPEAK_LOCALES: dict[str, EspeakLocale] = {
    "en-US": EspeakLocale("en-us", "m3", "f3"),
    "en-CA": EspeakLocale("en-us", "m2", "f5"),          # Canadian ~ General American: same accent, other speaker
    "en-GB": EspeakLocale("en-gb-x-rp", "m1", "f2"),     # Received Pronunciation
    "en-AU": EspeakLocale("en", "m7", "f4"),             # non-rhotic British base, other speaker
    "en-NZ": EspeakLocale("en", "m4", "f1"),
    "en-IE": EspeakLocale("en-gb-x-gbcwmd", "m5", "f3"),
    "en-IN": EspeakLocale("en-gb-x-gbclan", "m6", "f1"),
    "en-GB-scotland": EspeakLocale("en-gb-scotland", "m3", "f3"),
    "fr-FR": EspeakLocale("fr", "m3", "f3"),
    "fr-CA": EspeakLocale("fr", "m2", "f5"),
    "de-DE": EspeakLocale("de", "m3", "f3"),
    "es-ES": EspeakLocale("es", "m3", "f3"),
    "es-MX": EspeakLocale("es-419", "m3", "f3"),
    "it-IT": EspeakLocale("it", "m3", "f3"),
    "pt-BR": EspeakLocale("pt-br", "m3", "f3"),
    "pt-PT": EspeakLocale("pt", "m3", "f3"),
    "nl-NL": EspeakLocale("nl", "m3", "f3"),
    "ja-JP": EspeakLocale("ja", "m3", "f3"),
    "ko-KR": EspeakLocale("ko", "m3", "f3"),
    "zh-CN": EspeakLocale("cmn", "m3", "f3"),
    "hi-IN": EspeakLocale("hi", "m3", "f3"),
}

# Fallback by language prefix: the locale whose voice stands in for the language.
ESPEAK_LANGUAGES: dict[str, str] = {
    "en": "en-US", "fr": "fr-FR", "de": "de-DE", "es": "es-ES", "it": "it-IT",
    "pt": "pt-BR", "nl": "nl-NL", "ja": "ja-JP", "ko": "ko-KR", "zh": "zh-CN",
    "cmn": "zh-CN", "hi": "hi-IN",
}

# Speaker -> gender for the common Azure neural voices. A speaker not listed
# gets the locale's default (female, like the cloud's default voices).
AZURE_GENDERS: dict[str, str] = {
    # en-US
    "jenny": "female", "aria": "female", "ava": "female", "emma": "female", "amber": "female",
    "ana": "female", "ashley": "female", "cora": "female", "elizabeth": "female", "jane": "female",
    "michelle": "female", "monica": "female", "nancy": "female", "sara": "female", "luna": "female",
    "guy": "male", "davis": "male", "andrew": "male", "brian": "male", "christopher": "male",
    "eric": "male", "jacob": "male", "jason": "male", "roger": "male", "steffan": "male",
    "tony": "male", "brandon": "male", "kai": "male",
    # en-GB
    "libby": "female", "sonia": "female", "abbi": "female", "bella": "female", "hollie": "female",
    "maisie": "female", "olivia": "female", "ada": "female",
    "ryan": "male", "alfie": "male", "elliot": "male", "ethan": "male", "noah": "male",
    "oliver": "male", "thomas": "male", "ollie": "male",
    # en-AU
    "natasha": "female", "annette": "female", "carly": "female", "elsie": "female", "freya": "female",
    "joanne": "female", "kim": "female", "tina": "female",
    "william": "male", "darren": "male", "duncan": "male", "ken": "male", "neil": "male", "tim": "male",
    # en-CA, en-IN, en-IE, en-NZ
    "clara": "female", "liam": "male", "neerja": "female", "prabhat": "male",
    "emily": "female", "connor": "male", "molly": "female", "mitchell": "male",
    # a few other languages
    "denise": "female", "henri": "male", "katja": "female", "conrad": "male",
    "elvira": "female", "alvaro": "male", "dalia": "female", "jorge": "male",
    "elsa": "female", "isabella": "female", "diego": "male", "nanami": "female", "keita": "male",
    "xiaoxiao": "female", "yunxi": "male", "yunyang": "male", "francisca": "female",
    "antonio": "male", "sunhi": "female", "injoon": "male", "swara": "female", "madhur": "male",
    "colette": "female", "maarten": "male",
}

# "en-GB-LibbyNeural", "en-US-JennyMultilingualNeural", "en-US-Ava:DragonHDLatestNeural"
_AZURE_RE = re.compile(
    r"^(?P<lang>[a-z]{2,3})-(?P<region>[A-Za-z]{2,4})-(?P<speaker>[A-Za-z]+?)"
    r"(?:Multilingual)?(?::[A-Za-z0-9]+)?(?:Neural)?$"
)


@dataclass(frozen=True)
class CloudVoice:
    """What a cloud voice name tells us: locale (``en-GB``), speaker, gender."""

    locale: str
    speaker: str
    gender: str | None


def parse_cloud_voice(name: str | None) -> CloudVoice | None:
    """Parse an Azure-style voice name; ``None`` for anything else."""
    if not name:
        return None
    m = _AZURE_RE.match(name.strip())
    if not m:
        return None
    locale = f"{m['lang'].lower()}-{m['region'].upper()}"
    speaker = m["speaker"]
    return CloudVoice(locale=locale, speaker=speaker, gender=AZURE_GENDERS.get(speaker.lower()))


def _canonical_locale(language: str | None) -> str | None:
    """'en_gb' / 'EN-gb' -> 'en-GB'; a bare language stays lower case."""
    if not language or not language.strip():
        return None
    parts = re.split(r"[-_]", language.strip())
    lang = parts[0].lower()
    if len(parts) == 1:
        return lang
    return f"{lang}-{parts[1].upper()}"


def _locale_entry(locale: str | None) -> tuple[str, EspeakLocale]:
    """Exact locale, else the language's default locale, else en-US."""
    if locale and locale in ESPEAK_LOCALES:
        return locale, ESPEAK_LOCALES[locale]
    lang = (locale or "").split("-")[0]
    fallback = ESPEAK_LANGUAGES.get(lang, DEFAULT_LOCALE)
    return fallback, ESPEAK_LOCALES[fallback]


def espeak_voice_for(language: str | None, cloud_voice: str | None, engine: str = "espeak") -> Voice:
    """The eSpeak voice standing in for ``cloud_voice`` (or, without one, for ``language``).

    The locale in the cloud voice name wins over ``language`` (the voice is what
    the user hears). Unknown names or languages fall back to the default
    English voice; this never raises. ``voice_id`` is an eSpeak voice name with
    variant, e.g. ``en-gb-x-rp+f2``; ``Voice.language`` is the locale it stands in for.
    """
    parsed = parse_cloud_voice(cloud_voice)
    wanted = parsed.locale if parsed else _canonical_locale(language)
    locale, entry = _locale_entry(wanted)
    gender = (parsed.gender if parsed else None) or DEFAULT_GENDER
    variant = entry.male if gender == "male" else entry.female
    return Voice(
        engine=engine,
        voice_id=f"{entry.base}+{variant}",
        language=locale,
        gender=gender,
        requested=cloud_voice,
    )
