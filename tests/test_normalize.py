"""Text normalisation and sentence splitting (pure functions)."""

from __future__ import annotations

import pytest

from server.tts.normalize import normalize_text, spell_int, spell_number, spell_ordinal, split_sentences


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


def test_split_sentences_cuts_run_on_sentences_for_bounded_tts_calls() -> None:
    run_on = " ".join(["word"] * 500)
    parts = split_sentences(run_on)
    assert len(parts) > 1 and all(len(p) <= 250 for p in parts)
    assert " ".join(parts) == run_on
    commas = ", ".join(["a clause of some words"] * 30) + "."
    assert all(p.endswith(",") or p.endswith(".") for p in split_sentences(commas))
    assert split_sentences("x" * 600, max_chars=250) == ["x" * 250, "x" * 250, "x" * 100]
