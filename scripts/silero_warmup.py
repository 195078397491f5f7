"""How much audio the Silero confirmer needs: the measurement behind ``SileroConfirmer.min_audio_s``.

The confirmer runs each stretch from a fresh model state. For every 10 ms step
of every speech fixture where the *streaming* model (which has heard all the
audio before) scores its last 3 chunks >= 0.5, find the shortest stretch
ending there, in whole 32 ms chunks, on which the fresh-state confirmer says
"speech". Prints the distribution and its cumulative share.

Usage, from the checkout root: ``PYTHONPATH=. .venv/bin/python scripts/silero_warmup.py``
"""

from __future__ import annotations

import collections
from pathlib import Path

import soundfile as sf

from server import vad

RATE = 16000
CHUNK = 512  # samples: 32 ms at 16 kHz
STEP = 160  # samples: 10 ms
LONGEST = 20  # chunks tried before calling a position "never"


def main() -> None:
    confirmer = vad.SileroConfirmer(warmup_chunks=0)
    needed: collections.Counter[int] = collections.Counter()
    never = 0
    for path in sorted(Path("fixtures/speech").glob("*.wav")):
        samples, rate = sf.read(path, dtype="int16")
        assert rate == RATE, f"{path}: {rate} Hz"
        pcm = samples.astype("<i2").tobytes()
        streaming = confirmer.speech_probabilities(pcm, RATE)
        for end in range(int(0.2 * RATE), len(samples), STEP):
            done = end // CHUNK
            if done < 3 or min(streaming[done - 3 : done]) < 0.5:
                continue
            for n in range(3, LONGEST + 1):
                if confirmer.has_speech(pcm[max(0, end - n * CHUNK) * 2 : end * 2], RATE):
                    needed[n] += 1
                    break
            else:
                never += 1
    total = sum(needed.values()) + never
    print(f"{total} positions where the streaming model has 3 speech chunks in a row")
    cumulative = 0
    for n in sorted(needed):
        cumulative += needed[n]
        print(f"  {n:2d} chunks ({n * 32:3d} ms): {needed[n]:5d}   cumulative {100 * cumulative / total:5.1f} %")
    print(f"  more than {LONGEST} chunks: {never}")


if __name__ == "__main__":
    main()
