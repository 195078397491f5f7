"""Word error rate, for checking transcripts against fixture texts.

Shared by the ASR tests and the simulator's metrics, so both score the same way.
"""

from __future__ import annotations

import re

# Spellings the recognisers disagree on that mean the same word.
_EQUIVALENT = {"ok": "okay", "mhm": "uh huh", "alright": "all right"}
_WORD = re.compile(r"[a-z0-9']+")


def normalize_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words without punctuation.

    Hyphens split words ("Uh-huh." -> ["uh", "huh"]) and a few equivalent
    spellings are unified ("OK" -> "okay"), so WER counts wrong words, not style.
    """
    words: list[str] = []
    for raw in _WORD.findall(text.lower().replace("-", " ")):
        word = raw.strip("'")
        if not word:
            continue
        words.extend(_EQUIVALENT.get(word, word).split())
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return ``(edits, reference_words)``: the word-level Levenshtein distance
    (substitutions + insertions + deletions) and the number of reference words.

    Sum both over many clips to get a corpus WER.
    """
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[len(hyp)], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (0.0 = perfect).

    An empty reference scores 0.0 for an empty hypothesis and 1.0 otherwise, so
    "text where there was no speech" counts as an error.
    """
    edits, total = word_errors(reference, hypothesis)
    if total == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / total
