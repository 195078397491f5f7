"""The spoken form of a text: what a voice is given to say.

:func:`spoken_form` runs three steps:

1. markup -> plain text, always (:mod:`server.tts.markup`: markdown and HTML;
   markup is never meant to be heard);
2. writing conventions -> words, when ``speech_config.normalize_text`` is on
   (the default) and the voice speaks English: numbers, money, percentages,
   ordinals, abbreviations, times, fractions, units, scientific notation, math
   symbols, URLs and e-mail addresses;
3. what the voice cannot say is dropped, always (:mod:`server.tts.unspeakable`:
   emoji, letters of scripts the voice's language does not use, stray markup
   symbols).

eSpeak reads "$2,500" as "dollar two comma five hundred" and neural voices
stumble on "e.g."; the cloud service speaks them as words, so we do too.
The exact rules, with the spoken form of each, are in docs/tts.md and
tests/test_normalize.py.

The number speller is our own (American style, no "and": "one thousand two
hundred fifty"); hibari ships one but it speaks British "and" and is private API.
Other languages' voices get step 2 skipped: their engine reads digits in their
own language, which English words would spoil.
"""

from __future__ import annotations

import re
import unicodedata

from .markup import markup_to_text
from .unspeakable import drop_unspeakable

__all__ = [
    "normalize_text", "spoken_form", "split_sentences", "spell_fraction", "spell_int", "spell_ordinal", "spell_number",
]

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
# Three or more dot-separated numbers (a version, an IP address): each part a
# number, "point" between; else the number rule reads "1.2" and leaves ".3".
_DOTTED_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?!\w|\.\d)")


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


def _dotted_number(m: re.Match[str]) -> str:
    return " point ".join(spell_int(int(part)) for part in m.group().split("."))


def _number(m: re.Match[str]) -> str:
    words = ("minus " if m["neg"] else "") + spell_number(m["num"])
    # "5m" -> "five m", not "fivem" (a plural "s" stays glued: "100s" -> "one hundreds").
    after = m.string[m.end() : m.end() + 2]
    return words + " " if after[:1].isalpha() and not re.fullmatch(r"s\W?", after) else words


def spell_fraction(numerator: int, denominator: int) -> str:
    """Spell a fraction: (1, 2) -> "one half", (3, 4) -> "three quarters", (2, 3) -> "two thirds"."""
    if denominator < 2 or numerator < 0:
        raise ValueError(f"spell_fraction: need numerator >= 0 and denominator >= 2, got {numerator}/{denominator}")
    if denominator == 2:
        unit = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        unit = "quarter" if numerator == 1 else "quarters"
    else:
        unit = spell_ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{spell_int(numerator)} {unit}"


# -- URLs and e-mail addresses: the host is said, the path is not (the text event keeps it).

_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


def _dotted(name: str) -> str:
    return " dot ".join(part for part in re.split(r"\.", name) if part)


def _url(m: re.Match[str]) -> str:
    url = m.group().rstrip(".,;:!?'\"")
    trailing = m.group()[len(url):]
    host = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#:]", host, maxsplit=1)[0]
    return _dotted(host.lower()) + trailing


def _email(m: re.Match[str]) -> str:
    user, _, domain = m.group().partition("@")
    return f"{_dotted(user)} at {_dotted(domain.lower())}"


# -- fractions ------------------------------------------------------------------

_VULGAR_RE = re.compile(r"(?:(?P<whole>\d+)\s?)?(?P<f>[\u00bc-\u00be\u2150-\u215e])")
_FRACTION_RE = re.compile(r"(?<![\w/.,])(?:(?P<whole>\d+)\s+)?(?P<num>\d{1,2})\s?[/\u2044](?P<den>\d{1,2})(?![\w/]|[.,]\d)")
_FRACTION_MAX_DENOMINATOR = 16
#: Things written like fractions that are not.
_SLASH_IDIOMS = {"24/7": "twenty-four seven", "9/11": "nine eleven", "50/50": "fifty-fifty"}


def _vulgar(m: re.Match[str]) -> str:
    num, _, den = unicodedata.normalize("NFKD", m["f"]).partition("\u2044")
    whole = f"{m['whole']} " if m["whole"] else ""
    return f"{whole}{num}/{den}"


def _fraction(m: re.Match[str]) -> str:
    num, den = int(m["num"]), int(m["den"])
    text = m.group()
    if text.replace(" ", "") in _SLASH_IDIOMS:
        return _SLASH_IDIOMS[text.replace(" ", "")]
    if not 2 <= den <= _FRACTION_MAX_DENOMINATOR or (m["whole"] and num >= den):
        return text  # a date or a ratio: the numbers are read as numbers
    if m["whole"]:
        part = spell_fraction(num, den)
        if num == 1:  # "one and a half", "two and a quarter"
            part = "a " + part.split(" ", 1)[1]
        return f"{spell_int(int(m['whole']))} and {part}"
    return spell_fraction(num, den)


# -- powers and scientific notation --------------------------------------------

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_RE = re.compile(r"(?<=[\w)])([⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
_NUM_OR_INT = r"\d+(?:\.\d+)?"
_SCI_E_RE = re.compile(r"(?<![\w.])(?P<m>" + _NUM_OR_INT + r")[eE](?P<e>[-+]?\d+)(?![\w.])")
_SCI_TIMES_RE = re.compile(r"(?<![\w.])(?P<m>" + _NUM_OR_INT + r")\s*(?:[×x*·]|\\times)\s*10\^(?P<e>[-+−]?\d+)")
_POWER_RE = re.compile(r"(?P<b>\b\w+|\))\^(?P<e>[-+−]?\d+)(?!\d)")


def _power_words(exponent: str) -> str:
    exponent = exponent.replace("−", "-").lstrip("+")
    return {"2": "squared", "3": "cubed"}.get(exponent, f"to the power of {spell_number(exponent)}")


def _sci(m: re.Match[str]) -> str:
    exponent = m["e"].replace("−", "-").lstrip("+")
    return f"{m['m']} times ten to the power of {spell_number(exponent)}"


def _power(m: re.Match[str]) -> str:
    base = "ten" if m["b"] == "10" else m["b"]
    return f"{base} {_power_words(m['e'])}"


# -- times and ratios ------------------------------------------------------------

# The dot after "a.m." is kept where it may end the sentence, dropped before a lower-case word.
_MERIDIEM = r"(?P<ap>[AaPp])\.?\s?[Mm](?![\w])(?:\.(?=\s+[a-z]))?"
_CLOCK_RE = re.compile(r"(?<![\d:.])(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?![\d:])(?:\s?" + _MERIDIEM + r")?")
_HOUR_MERIDIEM_RE = re.compile(r"(?<![\d:.])(?P<h>1[0-2]|0?[1-9])\s?" + _MERIDIEM)
_RATIO_RE = re.compile(r"(?<![\d:.])(?P<a>\d+):(?P<b>\d)(?![\d:])")


def _meridiem(ap: str | None) -> str:
    return f" {ap.lower()} m" if ap else ""


def _clock(m: re.Match[str]) -> str:
    hour, minute = int(m["h"]), int(m["m"])
    ap = _meridiem(m["ap"])
    if minute == 0:
        if ap:
            return spell_int(hour) + ap
        return f"{spell_int(hour)} o'clock" if 1 <= hour <= 12 else f"{spell_int(hour)} hundred"
    minutes = f"oh {spell_int(minute)}" if minute < 10 else spell_int(minute)
    return f"{spell_int(hour)} {minutes}{ap}"


def _hour_meridiem(m: re.Match[str]) -> str:
    return spell_int(int(m["h"])) + _meridiem(m["ap"])


def _ratio(m: re.Match[str]) -> str:
    return f"{m['a']} to {m['b']}"


# -- units -----------------------------------------------------------------------

#: symbol -> (singular, plural). Case matters ("mB" is not "MB"). Left out on purpose:
#: "m" (metres or million?), "s" glued to a number ("1990s"), "K", "t", "in".
_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "µm": ("micrometer", "micrometers"), "μm": ("micrometer", "micrometers"), "nm": ("nanometer", "nanometers"),
    "mi": ("mile", "miles"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"), "mg": ("milligram", "milligrams"),
    "µg": ("microgram", "micrograms"), "μg": ("microgram", "micrograms"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "L": ("liter", "liters"), "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "gal": ("gallon", "gallons"),
    "ms": ("millisecond", "milliseconds"), "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"),
    "h": ("hour", "hours"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
    "W": ("watt", "watts"), "kW": ("kilowatt", "kilowatts"), "MW": ("megawatt", "megawatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"), "V": ("volt", "volts"), "mAh": ("milliamp hour", "milliamp hours"),
}
#: Units that only count after a space ("30 s" is seconds, "1990s" is a decade).
_SPACED_UNITS = {"s": ("second", "seconds")}
_UNIT_NUM = r"(?P<num>-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?))"
_UNIT_RE = re.compile(
    r"(?<![\w.])" + _UNIT_NUM + r"(?:\s?(?P<unit>" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")|\s(?P<spaced>" + "|".join(_SPACED_UNITS) + r"))(?P<pow>\^[23])?(?![\w/])"
)
_DEGREES_RE = re.compile(r"(?<![\w.])" + _UNIT_NUM + r"\s?°(?:\s?(?P<scale>[CF])(?!\w))?")
_SCALES_WORDS = {"C": "Celsius", "F": "Fahrenheit"}


# "m" is a unit only with a power: "5 m²" is square metres, "5 m" may be metres or million.
_AREA_RE = re.compile(r"(?<![\w.])" + _UNIT_NUM + r"\s?m\^(?P<pow>[23])(?!\w)")
_DECADE_RE = re.compile(r"(?<![\w.])(?:(?P<century>1[0-9]|20)|')?(?P<decade>[0-9]0)s\b")


def _area(m: re.Match[str]) -> str:
    word = "meter" if m["num"] == "1" else "meters"
    return f"{m['num']} {'square' if m['pow'] == '2' else 'cubic'} {word}"


def _decade(m: re.Match[str]) -> str:
    # "1990s" -> "nineteen nineties", "'80s" -> "eighties", "2000s" -> "two thousands".
    decade = int(m["decade"])
    if m["century"] == "20" and decade == 0:
        return "two thousands"
    tens = {0: "hundreds", 10: "tens"}.get(decade) or _TENS[decade // 10][:-1] + "ies"
    return f"{spell_int(int(m['century']))} {tens}" if m["century"] else tens


def _unit(m: re.Match[str]) -> str:
    one, many = _UNITS[m["unit"]] if m["unit"] else _SPACED_UNITS[m["spaced"]]
    word = one if m["num"] == "1" else many
    if m["pow"]:
        word = ("square " if m["pow"] == "^2" else "cubic ") + word
    return f"{m['num']} {word}"


def _degrees(m: re.Match[str]) -> str:
    word = "degree" if m["num"] == "1" else "degrees"
    scale = f" {_SCALES_WORDS[m['scale']]}" if m["scale"] else ""
    return f"{m['num']} {word}{scale}"


# -- math and other symbols --------------------------------------------------------

_SYMBOL_WORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\s*±\s*"), " plus or minus "),
    (re.compile(r"\s*≈\s*"), " about "),
    (re.compile(r"(?<![\w])~\s?(?=\d)"), "about "),
    (re.compile(r"\s*≤\s*"), " less than or equal to "),
    (re.compile(r"\s*≥\s*"), " greater than or equal to "),
    (re.compile(r"\s*≠\s*"), " not equal to "),
    (re.compile(r"\s*×\s*"), " times "),
    (re.compile(r"\s*÷\s*"), " divided by "),
    (re.compile(r"\s*[→⇒]\s*"), " to "),
    (re.compile(r"(?<=\d) ?\* ?(?=\d)"), " times "),
    (re.compile(r"(?<=\d)x(?![\w])"), " times"),
    (re.compile(r"(?<=[\w)]) ?\+ ?(?=[\d(])"), " plus "),
    (re.compile(r"(?<=\w) = (?=\w)"), " equals "),
    (re.compile(r"(?<=\w) < (?=\w)"), " less than "),
    (re.compile(r"(?<=\w) > (?=\w)"), " greater than "),
    (re.compile(r"(?<![\w&])#(?=\d)"), "number "),
    (re.compile(r"(?<=\s)@(?=\s)"), "at"),
]
_GREEK_LETTER_RE = re.compile(r"(?<!\w)[\u0391-\u03a9\u03b1-\u03c9](?!\w)")


def _greek_letter(m: re.Match[str]) -> str:
    # "GREEK SMALL LETTER ALPHA" -> "alpha": a lone Greek letter is a symbol, said by name.
    return unicodedata.name(m.group()).rsplit(" ", 1)[-1].lower()


def _expand(text: str) -> str:
    """Step 2 of :func:`spoken_form`: English words for written conventions."""
    out = _URL_RE.sub(_url, text)
    out = _EMAIL_RE.sub(_email, out)
    out = _DOTTED_RE.sub(_dotted_number, out)
    out = _VULGAR_RE.sub(_vulgar, out)
    out = _SUPERSCRIPT_RE.sub(lambda m: "^" + m.group().translate(_SUPERSCRIPTS), out)
    for pattern, words in _ABBREV_RES:
        out = pattern.sub(words, out)
    out = _SCI_TIMES_RE.sub(_sci, out)
    out = _SCI_E_RE.sub(_sci, out)
    out = _CURRENCY_RE.sub(_currency, out)
    out = _PERCENT_RE.sub(_percent, out)
    out = _CLOCK_RE.sub(_clock, out)
    out = _HOUR_MERIDIEM_RE.sub(_hour_meridiem, out)
    out = _RATIO_RE.sub(_ratio, out)
    out = _DEGREES_RE.sub(_degrees, out)
    out = _AREA_RE.sub(_area, out)
    out = _UNIT_RE.sub(_unit, out)
    out = _DECADE_RE.sub(_decade, out)
    out = _POWER_RE.sub(_power, out)
    out = _FRACTION_RE.sub(_fraction, out)
    for pattern, words in _SYMBOL_WORDS:
        out = pattern.sub(words, out)
    out = _GREEK_LETTER_RE.sub(_greek_letter, out)
    out = _ORDINAL_RE.sub(_ordinal, out)
    out = _NUMBER_RE.sub(_number, out)
    return out.replace("&", " and ")


def _speaks_english(language: str | None) -> bool:
    return language is None or language.replace("_", "-").split("-")[0].lower() == "en"


def spoken_form(text: str, *, language: str | None = None, expand: bool = True) -> str:
    """What a voice for ``language`` (``Voice.language``, e.g. ``en-US``; None =
    English) should say for ``text``.

    Markup is always removed and what the voice cannot say (emoji, other
    scripts, stray symbols) always dropped; with ``expand`` (the
    ``normalize_text`` knob) and an English voice, written conventions become
    words too: "**$3.50** at 3:30 pm" -> "three dollars and fifty cents at
    three thirty p m". Paragraphs, headings, list items and table rows come out
    separated by a blank line (a sentence break for :func:`split_sentences`).
    """
    if not isinstance(text, str):
        raise TypeError(f"spoken_form expects str, got {type(text).__name__}")
    plain = markup_to_text(text)
    if expand and _speaks_english(language):
        plain = _expand(plain)
    return drop_unspeakable(plain, language)


def normalize_text(text: str) -> str:
    """The spoken form of ``text`` for an English voice, written conventions expanded:
    "$3.50" -> "three dollars and fifty cents", "5%" -> "five percent", "1st" ->
    "first", "e.g." -> "for example", "**Note**" -> "Note" (see :func:`spoken_form`).

    Order matters: URLs, fractions and scientific notation first, then money
    and percentages (they own their digits), times, units, ordinals, then bare
    numbers. Years are read as plain numbers ("two thousand twenty-four"),
    which is what eSpeak would say anyway.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}")
    return spoken_form(text)


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
