"""Characters a voice cannot say: emoji, scripts of other languages, leftover markup symbols.

Rules (each documented in docs/tts.md, "What is spoken"):

* **Emoji and pictographs are skipped.** Unicode "other symbols" (category So)
  from U+2190 up (arrows block onwards: dingbats, emoticons, pictographs) and
  the characters that build emoji sequences (zero-width joiner, variation
  selectors, skin-tone modifiers, keycap, tags). eSpeak reads them by name
  ("grinning face", "white heavy check mark") in the middle of a sentence;
  someone reading a chat message aloud leaves them out. Latin-1 symbols such as
  ``°`` and ``©`` stay for the normaliser and the engine.
* **Letters of a script the voice's language does not use are skipped.** Latin
  letters are kept for every voice (names, brands, code words); a voice for
  ``zh``/``ja``/``ko``/``ru``/... also keeps its own script(s). An English voice
  reads a Chinese character as "Chinese letter", so ``你好`` is dropped, with the
  CJK punctuation around it. A letter's script is the first word of its
  Unicode name (``CJK UNIFIED IDEOGRAPH-4F60`` -> CJK).
* **Leftover markup symbols are dropped**: ``* _ ~ ` # ^ \\ < >`` that the
  markdown parser and the normaliser left (escaped or stray), ``|`` becomes a
  comma. A ``_`` inside a word becomes a space (``snake_case`` -> "snake case").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["drop_unspeakable", "speakable_scripts"]

#: Scripts (first word of a letter's Unicode name) each language's voice can say, besides Latin.
_SCRIPTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"CJK"}),
    "yue": frozenset({"CJK"}),
    "cmn": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
    "ru": frozenset({"CYRILLIC"}),
    "uk": frozenset({"CYRILLIC"}),
    "bg": frozenset({"CYRILLIC"}),
    "sr": frozenset({"CYRILLIC"}),
    "mk": frozenset({"CYRILLIC"}),
    "be": frozenset({"CYRILLIC"}),
    "kk": frozenset({"CYRILLIC"}),
    "el": frozenset({"GREEK"}),
    "ar": frozenset({"ARABIC"}),
    "fa": frozenset({"ARABIC"}),
    "ur": frozenset({"ARABIC"}),
    "he": frozenset({"HEBREW"}),
    "hi": frozenset({"DEVANAGARI"}),
    "mr": frozenset({"DEVANAGARI"}),
    "ne": frozenset({"DEVANAGARI"}),
    "bn": frozenset({"BENGALI"}),
    "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}),
    "th": frozenset({"THAI"}),
    "ka": frozenset({"GEORGIAN"}),
    "hy": frozenset({"ARMENIAN"}),
}
# Name prefixes that are not scripts of their own.
_SCRIPT_ALIASES = {"FULLWIDTH": "LATIN", "HALFWIDTH": "KATAKANA", "MODIFIER": "LATIN"}
_EMOJI_PARTS = {0x200D, 0x20E3, 0xFE0E, 0xFE0F}
_STRAY = re.compile(r"[*~`#^\\<>]+")
_INWORD_UNDERSCORE = re.compile(r"(?<=\w)_+(?=\w)")


def speakable_scripts(language: str | None) -> frozenset[str]:
    """Scripts a voice for ``language`` (a BCP 47 tag like ``en-US``; None = English) can say."""
    base = (language or "en").replace("_", "-").split("-")[0].lower()
    return frozenset({"LATIN"}) | _SCRIPTS.get(base, frozenset())


def _script(ch: str) -> str:
    first = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    return _SCRIPT_ALIASES.get(first, first)


def _is_emoji_part(ch: str) -> bool:
    code = ord(ch)
    if code in _EMOJI_PARTS or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    return code >= 0x2190 and unicodedata.category(ch) == "So"


def drop_unspeakable(text: str, language: str | None = None) -> str:
    """``text`` without emoji, letters of scripts the voice cannot say, and stray markup symbols.

    ``language`` is the voice's language (``Voice.language``). Whitespace left
    behind is collapsed; paragraph breaks (blank lines) are kept.
    """
    scripts = speakable_scripts(language)
    keeps_cjk = "CJK" in scripts or "HANGUL" in scripts or "HIRAGANA" in scripts
    out: list[str] = []
    for ch in text:
        if _is_emoji_part(ch):
            out.append(" ")
            continue
        code = ord(ch)
        if not keeps_cjk and (0x3000 <= code <= 0x303F or 0xFF61 <= code <= 0xFF65):
            out.append(" ")  # CJK punctuation around dropped CJK text
            continue
        if 0xFF01 <= code <= 0xFF5E:  # fullwidth ASCII: the same characters, narrow
            ch = unicodedata.normalize("NFKC", ch)
        elif ch.isalpha() and _script(ch) not in scripts:
            out.append(" ")
            continue
        out.append(ch)
    cleaned = _INWORD_UNDERSCORE.sub(" ", "".join(out))
    cleaned = _STRAY.sub(" ", cleaned.replace("_", " "))
    cleaned = cleaned.replace("|", ",")
    return _tidy(cleaned)


def _tidy(text: str) -> str:
    paragraphs = []
    for para in re.split(r"\n\s*\n", text):
        words = " ".join(para.split())
        words = re.sub(r"\s+([,.;:!?])", r"\1", words)  # "hi , there" after a dropped symbol
        words = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", words)  # runs of pauses left by dropped cells
        words = words.strip(" ,;:")
        if words:
            paragraphs.append(words)
    return "\n\n".join(paragraphs)
