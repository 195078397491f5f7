"""Whisper's hallucinations on non-speech: a bag of known phrases and loop removal.

Whisper's decoder is a language model: given a hum, a cough or a door, it
writes the most likely text of its training data for "no speech", mostly
video outros ("Thank you.", "Thanks for watching!") and short fillers
("You."), and when it gets stuck it repeats a phrase. Barański et al.,
"Investigation of Whisper ASR Hallucinations Induced by Non-Speech Audio"
(ICASSP 2025, arXiv:2501.11378) show that such outputs come from a small set
that recurs whatever the sound, and remove them with a *bag of hallucinations*
and *delooping*; both are done here, in the ASR's post-processing.

The bag below holds what ``tiny.en`` wrote on the fixtures of
``fixtures/sounds/`` and ``shared/cases/nonspeech-sounds`` (docs/asr.md has
the table) plus the most frequent outputs listed in that literature. A phrase
of the bag is only dropped when Whisper itself doubted there was speech
(``no_speech_prob`` at least :data:`BAG_MIN_NO_SPEECH_PROB`): a user who says
"thank you" is recognised with 0.01-0.18 (measured on the speech fixtures,
clean and under noise), non-speech gets 0.74-0.96.
"""

from __future__ import annotations

from server.asr.wer import normalize_words

#: ``no_speech_prob`` from which a phrase of the bag counts as hallucinated.
BAG_MIN_NO_SPEECH_PROB = 0.5

#: Known non-speech outputs, as normalized word tuples (:func:`server.asr.wer.normalize_words`).
BAG_OF_HALLUCINATIONS: frozenset[tuple[str, ...]] = frozenset(
    tuple(normalize_words(p))
    for p in (
        # measured here (tiny.en on fixtures/sounds and the hum case)
        "Thank you.",
        "You.",
        "Okay.",
        "I can't do it.",
        "Good night.",
        "Here we go.",
        # frequent in the literature (Barański et al. 2025; Whisper discussions)
        "Thanks for watching!",
        "Thank you for watching.",
        "Thank you so much for watching.",
        "Thank you very much.",
        "Please subscribe.",
        "Subtitles by the Amara.org community",
        "Bye.",
        "Bye-bye.",
        "So.",
        "Oh.",
        "Hmm.",
    )
)


def is_known_hallucination(text: str, no_speech_prob: float) -> bool:
    """True when ``text`` is a phrase of the bag and Whisper doubted there was speech."""
    return no_speech_prob >= BAG_MIN_NO_SPEECH_PROB and tuple(normalize_words(text)) in BAG_OF_HALLUCINATIONS


def collapse_repeats(text: str, *, min_repeats: int = 3, max_ngram: int = 8) -> str:
    """Remove decoder loops: an n-gram (n <= ``max_ngram`` words) said ``min_repeats``
    or more times in a row is kept once.

    Words are compared normalized (case and punctuation ignored) and the first
    occurrence keeps its spelling. Two in a row ("no, no") is ordinary speech
    and stays. Example: ``"I'm going to, I'm going to, I'm going to go."`` ->
    ``"I'm going to, go."``.
    """
    if min_repeats < 2:
        raise ValueError(f"min_repeats must be >= 2, got {min_repeats}")
    tokens = text.split()
    keys = [" ".join(normalize_words(t)) for t in tokens]
    out: list[int] = []  # indices of kept tokens
    i = 0
    while i < len(tokens):
        skipped = False
        for n in range(max_ngram, 0, -1):
            gram = keys[i : i + n]
            if len(gram) < n or not any(gram):
                continue
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= min_repeats:
                out.extend(range(i, i + n))
                i += reps * n
                skipped = True
                break
        if not skipped:
            out.append(i)
            i += 1
    return " ".join(tokens[k] for k in out)


def repeats_a_phrase(text: str, n: int = 3) -> bool:
    """True when some run of ``n`` words occurs twice in ``text``: the mark of a
    decoding loop ("What do you think I'm out ... What do you think I'm out"),
    which can score a higher mean log-probability than the sound reading."""
    words = normalize_words(text)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False
