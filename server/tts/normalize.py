"""Text normalisation for speech: numbers, money, percentages, ordinals and
abbreviations become words, and text is cut into sentences for streaming.

eSpeak reads "$2,500" as "dollar two comma five hundred" and neural voices
stumble on "e.g."; the cloud service speaks them as words, so we do too
(``speech_config.normalize_text``, default on).

The number speller is our own (American style, no "and": "one thousand two
hundred fifty"); hibari ships one but it speaks British "and" and is private API.
"""

from __future__ import annotations

import re

__all__ = ["normalize_text", "split_sentences", "spell_int", "spell_ordinal", "spell_number"]

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"]
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_ONES[rest])
    return words


def spell_int(n: int) -> str:
    """Spell an integer in American English words: 1250 -> "one thousand two hundred fifty".

    Numbers beyond the quintillions are read digit by digit (nobody says them aloud)."""
    if n < 0:
        return "minus " + spell_int(-n)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(_SCALES):
        return " ".join(_ONES[int(d)] for d in str(n))
    groups: list[str] = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            groups.append(" ".join(_below_thousand(chunk) + ([_SCALES[scale]] if scale else [])))
        scale += 1
    return " ".join(reversed(groups))


def spell_ordinal(n: int) -> str:
    """Spell an ordinal: 1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth"."""
    words = spell_int(n)
    head, sep, last = words.rpartition(" ")
    prefix, dash, tail = last.rpartition("-")
    if tail in _ORDINAL_IRREGULAR:
        tail = _ORDINAL_IRREGULAR[tail]
    elif tail.endswith("y"):
        tail = tail[:-1] + "ieth"
    else:
        tail += "th"
    return head + sep + prefix + dash + tail


def spell_number(text: str) -> str:
    """Spell a number written with optional thousands commas and decimals:
    "1,250" -> "one thousand two hundred fifty", "3.5" -> "three point five",
    "-2" -> "minus two". Decimals are read digit by digit, as people read them."""
    raw = text.replace(",", "")
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", raw):
        raise ValueError(f"spell_number: {text!r} is not a number like '42', '1,250' or '3.5'")
    sign = ""
    if raw[0] in "+-":
        sign = "minus " if raw[0] == "-" else ""
        raw = raw[1:]
    whole, _, frac = raw.partition(".")
    words = spell_int(int(whole or "0"))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return sign + words


# Abbreviations: matched case-sensitively where the lower-case form is a word
# ("Dr." vs "dr."), with the trailing period consumed so it does not end a sentence.
_ABBREVIATIONS: list[tuple[str, str]] = [
    (r"\be\.g\.", "for example"),
    (r"\bi\.e\.", "that is"),
    (r"\betc\.", "et cetera"),
    (r"\bvs\.?(?=\s)", "versus"),
    (r"\bapprox\.", "approximately"),
    (r"\bDr\.", "Doctor"),
    (r"\bMr\.", "Mister"),
    (r"\bMrs\.", "Missus"),
    (r"\bMs\.", "Miz"),
    (r"\bProf\.", "Professor"),
    (r"\bSt\.(?=\s+[A-Z])", "Saint"),
    (r"\bNo\.(?=\s*\d)", "number"),
    (r"\bJr\.", "Junior"),
    (r"\bSr\.", "Senior"),
    (r"\bInc\.", "Incorporated"),
    (r"\bLtd\.", "Limited"),
    (r"\bdept\.", "department"),
    (r"\bmin\.(?=\s)", "minutes"),
    (r"\bhrs?\.(?=\s)", "hours"),
]
_ABBREV_RES = [(re.compile(p), w) for p, w in _ABBREVIATIONS]

# One number token: digits with optional thousands commas and a decimal part.
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}
_SCALE_WORDS = r"thousand|million|billion|trillion|k|m|bn"
_CURRENCY_RE = re.compile(
    r"(?P<neg>-)?(?P<sym>[$€£])\s?(?P<num>" + _NUM + r")(?:\s?(?P<scale>" + _SCALE_WORDS + r")\b)?",
    re.IGNORECASE,
)
_PERCENT_RE = re.compile(r"(?P<num>-?(?:" + _NUM + r"))\s?%")
_ORDINAL_RE = re.compile(r"\b(?P<num>\d+)(?P<suf>st|nd|rd|th)\b", re.IGNORECASE)
# A bare number, not glued to letters on the left (keeps "mp3", "COVID19" alone).
_NUMBER_RE = re.compile(r"(?<![\w.])(?P<neg>-)?(?P<num>" + _NUM + r")(?![\d])")
_SCALE_NAMES = {"k": "thousand", "m": "million", "bn": "billion"}


def _currency(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m["sym"]]
    num = m["num"].replace(",", "")
    prefix = "minus " if m["neg"] else ""
    if m["scale"]:
        scale = _SCALE_NAMES.get(m["scale"].lower(), m["scale"].lower())
        return f"{prefix}{spell_number(num)} {scale} {many}"
    whole, _, frac = num.partition(".")
    units = int(whole or "0")
    parts: list[str] = []
    if units or not frac:
        parts.append(f"{spell_int(units)} {one if units == 1 else many}")
    if frac:
        # "$3.5" is three dollars fifty; more than two decimals is a price per unit: read it out.
        if len(frac) > 2:
            return f"{prefix}{spell_number(num)} {many}"
        cents = int(frac.ljust(2, "0"))
        if cents:
            parts.append(f"{spell_int(cents)} {sub_one if cents == 1 else sub_many}")
        elif not parts:
            parts.append(f"zero {many}")
    return prefix + " and ".join(parts)


def _percent(m: re.Match[str]) -> str:
    return f"{spell_number(m['num'])} percent"


def _ordinal(m: re.Match[str]) -> str:
    return spell_ordinal(int(m["num"]))


def _number(m: re.Match[str]) -> str:
    return ("minus " if m["neg"] else "") + spell_number(m["num"])


def normalize_text(text: str) -> str:
    """Rewrite ``text`` the way it is spoken: "$3.50" -> "three dollars and fifty
    cents", "5%" -> "five percent", "1st" -> "first", "e.g." -> "for example".

    Order matters: money and percentages first (they own their digits), then
    ordinals, then bare numbers. Years are read as plain numbers ("two thousand
    twenty-four"), which is what eSpeak would say anyway.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}")
    out = text
    for pattern, words in _ABBREV_RES:
        out = pattern.sub(words, out)
    out = _CURRENCY_RE.sub(_currency, out)
    out = _PERCENT_RE.sub(_percent, out)
    out = _ORDINAL_RE.sub(_ordinal, out)
    out = _NUMBER_RE.sub(_number, out)
    out = out.replace("&", " and ")
    return re.sub(r"[ \t]{2,}", " ", out)


# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and
# then something that can start a sentence. Periods inside "3.5" have no space
# after them, and abbreviations are checked separately.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"”’')\]]*\s+|\n\s*\n|\n(?=\s*[-*•]\s)")
_NO_BREAK_BEFORE = re.compile(r"^\s*[a-z0-9]")
_NO_BREAK_AFTER = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|approx|Dr|Mr|Mrs|Ms|Prof|St|Jr|Sr|Inc|Ltd|dept|[A-Z])\.)[\"”’')\]]*$"
)


#: Longest piece one synthesis call gets: a run-on "sentence" is cut at a
#: comma or space so no single TTS call holds a worker for long (a 2,000
#: character sentence took 1.3 s in one call; other sessions waited on it).
MAX_SENTENCE_CHARS = 250


def _cap_length(piece: str, max_chars: int) -> list[str]:
    out = []
    while len(piece) > max_chars:
        cut = piece.rfind(", ", 0, max_chars)
        cut = cut + 1 if cut > max_chars // 2 else piece.rfind(" ", 0, max_chars)
        if cut <= 0:
            cut = max_chars  # no space at all: cut inside the word
        out.append(piece[:cut].strip())
        piece = piece[cut:].strip()
    if piece:
        out.append(piece)
    return out


def split_sentences(text: str, min_chars: int = 20, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Cut ``text`` into sentences for sentence-by-sentence synthesis.

    Does not split after abbreviations ("e.g.", "Dr.") or initials, inside
    numbers ("3.5"), or before a lower-case word. Fragments shorter than
    ``min_chars`` ("Yes.", "OK!") are merged into the following sentence so each
    synthesis call has enough text for natural prosody; a short last fragment is
    merged into the one before it. A piece longer than ``max_chars`` is cut at
    its last comma (or else space) before that length.
    """
    if min_chars < 0:
        raise ValueError(f"split_sentences: min_chars must be >= 0, got {min_chars}")
    pieces: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        head, rest = text[start:m.start()], text[m.end():]
        if _NO_BREAK_AFTER.search(head.rstrip()) and "\n" not in m.group():
            continue
        if _NO_BREAK_BEFORE.match(rest) and "\n" not in m.group():
            continue
        pieces.append(text[start:m.end()].strip())
        start = m.end()
    pieces.append(text[start:].strip())
    pieces = [" ".join(p.split()) for p in pieces if p.strip()]

    merged: list[str] = []
    pending = ""
    for p in pieces:
        pending = f"{pending} {p}" if pending else p
        if len(pending) >= min_chars:
            merged.append(pending)
            pending = ""
    if pending:
        if merged:
            merged[-1] = f"{merged[-1]} {pending}"
        else:
            merged.append(pending)
    return [part for piece in merged for part in _cap_length(piece, max_chars)]
