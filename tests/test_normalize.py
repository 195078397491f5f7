"""Text normalisation and sentence splitting (pure functions)."""

from __future__ import annotations

import pytest

from server.tts.normalize import (
    normalize_text, spell_fraction, spell_int, spell_number, spell_ordinal, split_sentences, spoken_form,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (42, "forty-two"),
        (90, "ninety"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1250, "one thousand two hundred fifty"),
        (2000000, "two million"),
        (1001001, "one million one thousand one"),
        (-3, "minus three"),
    ],
)
def test_spell_int(n: int, words: str) -> None:
    assert spell_int(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (11, "eleventh"), (12, "twelfth"),
     (20, "twentieth"), (21, "twenty-first"), (100, "one hundredth"), (103, "one hundred third")],
)
def test_spell_ordinal(n: int, words: str) -> None:
    assert spell_ordinal(n) == words


def test_spell_number_rejects_non_numbers_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="not a number"):
        spell_number("12a")


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("42", "forty-two"),
        ("3.5", "three point five"),
        ("1,250", "one thousand two hundred fifty"),
        ("0.25", "zero point two five"),
        ("$2,500", "two thousand five hundred dollars"),
        ("$3.50", "three dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$0.99", "ninety-nine cents"),
        ("$1.01", "one dollar and one cent"),
        ("€20", "twenty euros"),
        ("€3.50", "three euros and fifty cents"),
        ("£1", "one pound"),
        ("£4.20", "four pounds and twenty pence"),
        ("$5 million", "five million dollars"),
        ("$5k", "five thousand dollars"),
        ("5%", "five percent"),
        ("12.5%", "twelve point five percent"),
        ("1st", "first"),
        ("22nd", "twenty-second"),
        ("3rd", "third"),
        ("100th", "one hundredth"),
        ("e.g. apples", "for example apples"),
        ("apples, etc.", "apples, et cetera"),
        ("cats vs. dogs", "cats versus dogs"),
        ("Dr. Smith", "Doctor Smith"),
        ("approx. 3 hours", "approximately three hours"),
        ("i.e. now", "that is now"),
    ],
)
def test_normalize_cases(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken


def test_normalize_sentence_mixes_everything() -> None:
    out = normalize_text("Revenue grew 5% to $2,500 on the 3rd, e.g. 1,250 units vs. 42 last year.")
    assert out == (
        "Revenue grew five percent to two thousand five hundred dollars on the third, "
        "for example one thousand two hundred fifty units versus forty-two last year."
    )


def test_normalize_leaves_words_with_digits_alone() -> None:
    # Model names and codes are not numbers to read out.
    assert normalize_text("play the mp3 file") == "play the mp3 file"
    assert normalize_text("no digits here.") == "no digits here."


def test_normalize_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="expects str"):
        normalize_text(42)  # type: ignore[arg-type]


def test_split_sentences_basic() -> None:
    text = "The first sentence is here. The second one asks a question? The third one shouts!"
    assert split_sentences(text) == [
        "The first sentence is here.",
        "The second one asks a question?",
        "The third one shouts!",
    ]


def test_split_sentences_keeps_abbreviations_and_decimals() -> None:
    text = "Fruit, e.g. apples, costs 3.5 dollars today. Dr. Smith said so at noon. It is approx. right."
    assert split_sentences(text) == [
        "Fruit, e.g. apples, costs 3.5 dollars today.",
        "Dr. Smith said so at noon.",
        "It is approx. right.",
    ]


def test_split_sentences_merges_short_fragments() -> None:
    text = "Yes. Of course I can help you with that. OK."
    # "Yes." joins the next sentence; the short last "OK." joins the one before.
    assert split_sentences(text) == ["Yes. Of course I can help you with that. OK."]


def test_split_sentences_min_chars_zero_keeps_every_sentence() -> None:
    assert split_sentences("Yes. No. Maybe.", min_chars=0) == ["Yes.", "No.", "Maybe."]


def test_split_sentences_paragraphs_and_blank_input() -> None:
    text = "A heading without a stop\n\nThe body of the text follows here."
    assert split_sentences(text) == ["A heading without a stop", "The body of the text follows here."]
    assert split_sentences("   ") == []
    with pytest.raises(ValueError, match="min_chars"):
        split_sentences("x", min_chars=-1)


def test_split_then_normalize_round_trip_keeps_all_words() -> None:
    text = "It costs $3.50, i.e. cheap. We sold 1,250 of them in the 2nd quarter!"
    joined = " ".join(normalize_text(s) for s in split_sentences(text))
    assert joined == normalize_text(text)


# ------------------------------------------------------------------- the spoken form
# Exact spoken form of each input (English voice, normalize_text on); the rules are in
# docs/tts.md, "What is spoken". The text events keep the original text.

SPOKEN_FORM = [
    # markdown and HTML
    ('**Hedge losses against stock price variance**', 'Hedge losses against stock price variance'),
    ('__bold__ and *italic* and _italic_', 'bold and italic and italic'),
    ('# A heading', 'A heading'),
    ('### Third level', 'Third level'),
    ('Read [the guide](https://example.com/guide) first.', 'Read the guide first.'),
    ('![a chart of returns](chart.png)', 'a chart of returns'),
    ('Run `pip install air` now.', 'Run pip install air now.'),
    ('> A quoted line', 'A quoted line'),
    ('- Buy puts\n- Sell calls', 'Buy puts\n\nSell calls'),
    ('* one\n* two', 'one\n\ntwo'),
    ('1. Buy puts\n2. Sell calls', 'one. Buy puts\n\ntwo. Sell calls'),
    ('3) Third step', 'three. Third step'),
    ('| Asset | Share |\n|---|---|\n| Bonds | 40% |\n| Gold | 5% |', 'Asset, Share\n\nBonds, forty percent\n\nGold, five percent'),
    ('Intro:\n\n```python\nprint(42)\n```\n\nThat is all.', 'Intro\n\nThat is all.'),
    ('<b>Bold</b> and <i>italic</i> text', 'Bold and italic text'),
    ('Line one<br>line two', 'Line one line two'),
    ('The price is ~~$10~~ $8.', 'The price is eight dollars.'),
    ('Not \\*bold\\* at all', 'Not bold at all'),
    ('AT&amp;T', 'AT and T'),
    ('Escaped \\# hash', 'Escaped hash'),
    ('---', ''),
    ('snake_case_name', 'snake case name'),
    # times
    ('We meet at 3:30 pm.', 'We meet at three thirty p m.'),
    ('Call at 3pm.', 'Call at three p m.'),
    ('At 10:05 a.m. sharp', 'At ten oh five a m sharp'),
    ('The 15:00 train', 'The fifteen hundred train'),
    ('At 9:00 we start', "At nine o'clock we start"),
    ('Odds of 3:1', 'Odds of three to one'),
    # dotted numbers: versions, addresses
    ('Install air 1.2.3 today.', 'Install air one point two point three today.'),
    ('Python 3.11.7 or 3.12', 'Python three point eleven point seven or three point one two'),
    ('Ping 192.168.0.1.', 'Ping one hundred ninety-two point one hundred sixty-eight point zero point one.'),
    # fractions
    ('Add ½ cup', 'Add one half cup'),
    ('1½ cups', 'one and a half cups'),
    ('2 1/2 cups', 'two and a half cups'),
    ('3/4 of it', 'three quarters of it'),
    ('2/3 done', 'two thirds done'),
    ('5/16 inch', 'five sixteenths inch'),
    ('Open 24/7', 'Open twenty-four seven'),
    ('a 50/50 split', 'a fifty-fifty split'),
    ('On 12/25/2024', 'On twelve/twenty-five/two thousand twenty-four'),
    # units
    ('5 km', 'five kilometers'),
    ('1 km', 'one kilometer'),
    ('10 km/h', 'ten kilometers per hour'),
    ('60 mph', 'sixty miles per hour'),
    ('3 kg', 'three kilograms'),
    ('250 g', 'two hundred fifty grams'),
    ('2.5 GB', 'two point five gigabytes'),
    ('100 ms', 'one hundred milliseconds'),
    ('30 s', 'thirty seconds'),
    ('20°C', 'twenty degrees Celsius'),
    ('-5 °F', 'minus five degrees Fahrenheit'),
    ('a 90° turn', 'a ninety degrees turn'),
    ('40 m²', 'forty square meters'),
    ('1,500 kWh', 'one thousand five hundred kilowatt hours'),
    ('5 m away', 'five m away'),
    # scientific notation and powers
    ('1.5e-3', 'one point five times ten to the power of minus three'),
    ('6.02×10^23', 'six point zero two times ten to the power of twenty-three'),
    ('6.02 x 10²³', 'six point zero two times ten to the power of twenty-three'),
    ('10⁻⁹ seconds', 'ten to the power of minus nine seconds'),
    ('E = mc²', 'E equals mc squared'),
    ('2^10', 'two to the power of ten'),
    # URLs and e-mail addresses
    ('See https://www.example.com/docs?id=3.', 'See example dot com.'),
    ('Visit www.python.org today', 'Visit python dot org today'),
    ('Write to bob.smith@example.com.', 'Write to bob dot smith at example dot com.'),
    # emoji and other scripts (English voice)
    ('Great job 😀👍🏽!', 'Great job!'),
    ('Done ✅', 'Done'),
    ('I ❤️ it', 'I it'),
    ('Hello 你好。 there', 'Hello there'),
    ('Say Привет to Ivan', 'Say to Ivan'),
    ('Ελληνικά text', 'text'),
    # symbols
    ('A | B', 'A, B'),
    ('x ~ y', 'x y'),
    ('#1 pick', 'number one pick'),
    ('±5 degrees', 'plus or minus five degrees'),
    ('≈ 3 hours', 'about three hours'),
    ('~5 km', 'about five kilometers'),
    ('3 * 4', 'three times four'),
    ('2 + 2 = 4', 'two plus two equals four'),
    ('5 > 3', 'five greater than three'),
    ('α and β', 'alpha and beta'),
    ('5x faster', 'five times faster'),
    ('the 1990s', 'the nineteen nineties'),
    ("the '80s", 'the eighties'),
]


@pytest.mark.parametrize(("text", "spoken"), SPOKEN_FORM)
def test_spoken_form(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken
    assert spoken_form(text, language="en-US") == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ('**Hi** at 3:30 pm 😀', 'Hi at 3:30 pm'),
        ('Price: $5 | 10% off', 'Price: $5, 10% off'),
        ('你好 **bold** 42', 'bold 42'),
    ],
)
def test_markup_emoji_and_other_scripts_go_even_without_normalisation(text: str, spoken: str) -> None:
    # normalize_text: false keeps numbers and symbols for the engine, but markup is never spoken.
    assert spoken_form(text, expand=False) == spoken


@pytest.mark.parametrize(
    ("language", "text", "spoken"),
    [
        ('zh-CN', '你好, **world** 😀', '你好, world'),
        ('fr-FR', '**Bonjour** 42 Привет', 'Bonjour 42'),
        ('ru-RU', 'Привет 42 你好', 'Привет 42'),
        ('ja-JP', 'こんにちは カタカナ 漢字 hello', 'こんにちは カタカナ 漢字 hello'),
        ('en-GB', '**Hi** 3:30 pm', 'Hi three thirty p m'),
    ],
)
def test_spoken_form_follows_the_voice_language(language: str, text: str, spoken: str) -> None:
    # A voice keeps Latin and its own scripts; only English voices get English number words.
    assert spoken_form(text, language=language) == spoken


@pytest.mark.parametrize(
    ("fraction", "words"),
    [((1, 2), "one half"), ((3, 2), "three halves"), ((1, 4), "one quarter"), ((3, 4), "three quarters"),
     ((1, 3), "one third"), ((2, 3), "two thirds"), ((5, 8), "five eighths"), ((1, 16), "one sixteenth")],
)
def test_spell_fraction(fraction: tuple[int, int], words: str) -> None:
    assert spell_fraction(*fraction) == words


def test_spell_fraction_rejects_what_is_not_one() -> None:
    with pytest.raises(ValueError, match="denominator >= 2"):
        spell_fraction(1, 1)


def test_markdown_answer_is_cut_into_spoken_sentences() -> None:
    # The case of shared/cases/tts-text-edge: a bold title, a paragraph and bullets.
    answer = (
        "**Hedge losses against stock price variance**\n\nYou asked: How do I hedge my stocks. "
        "Here is how I would hedge losses. \n\n- Buy protective put options, budgeting around $1,200 a quarter.\n"
        "- Spread the equity part across at least 12 sectors.\n- Rebalance every 3 months back to your target mix."
    )
    assert split_sentences(normalize_text(answer)) == [
        "Hedge losses against stock price variance",
        "You asked: How do I hedge my stocks.",
        "Here is how I would hedge losses.",
        "Buy protective put options, budgeting around one thousand two hundred dollars a quarter.",
        "Spread the equity part across at least twelve sectors.",
        "Rebalance every three months back to your target mix.",
    ]


def test_nothing_left_to_say_is_an_empty_string() -> None:
    assert spoken_form("😀 🎉") == ""
    assert spoken_form("```\ncode only\n```") == ""


def test_spoken_form_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="expects str"):
        spoken_form(None)  # type: ignore[arg-type]
def test_split_sentences_cuts_run_on_sentences_for_bounded_tts_calls() -> None:
    run_on = " ".join(["word"] * 500)
    parts = split_sentences(run_on)
    assert len(parts) > 1 and all(len(p) <= 250 for p in parts)
    assert " ".join(parts) == run_on
    commas = ", ".join(["a clause of some words"] * 30) + "."
    assert all(p.endswith(",") or p.endswith(".") for p in split_sentences(commas))
    assert split_sentences("x" * 600, max_chars=250) == ["x" * 250, "x" * 250, "x" * 100]
