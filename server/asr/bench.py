"""Measure ASR speed and accuracy on WAV files with JSON sidecars.

    python -m server.asr.bench --engine whisper fixtures/speech/*.wav

Prints the model load time and, per file, the real-time factor (decode time /
audio duration) of one partial (``final=False``) and one final decode, and the
WER against the sidecar ``text``. RTF < 1 means faster than real time.
"""

from __future__ import annotations

import argparse
import json
import time
import wave
from pathlib import Path

from server.asr import get_asr_engine
from server.asr.wer import word_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ASR real-time factor and WER on fixture WAVs")
    parser.add_argument("--engine", default="whisper")
    parser.add_argument("wavs", nargs="+", type=Path)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    engine = get_asr_engine(args.engine)
    print(f"{args.engine}: load {time.perf_counter() - start:.2f} s")
    total_audio = total_partial = total_final = 0.0
    edits = words = 0
    for path in args.wavs:
        with wave.open(str(path)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        duration = len(pcm) / 2 / rate
        sidecar = path.with_suffix(".json")
        reference = json.loads(sidecar.read_text())["text"] if sidecar.exists() else ""
        t0 = time.perf_counter()
        engine.transcribe(f"{path}:partial", pcm, rate, final=False)
        engine.forget(f"{path}:partial")
        t1 = time.perf_counter()
        text = engine.transcribe(f"{path}:final", pcm, rate, final=True)
        t2 = time.perf_counter()
        e, n = word_errors(reference, text)
        edits, words = edits + e, words + n
        total_audio += duration
        total_partial += t1 - t0
        total_final += t2 - t1
        print(f"{path.name:36s} {duration:5.2f} s  partial RTF {(t1 - t0) / duration:.3f}  "
              f"final RTF {(t2 - t1) / duration:.3f}  errors {e}/{n}  {text!r}")
    print(f"total {total_audio:.1f} s audio: partial RTF {total_partial / total_audio:.3f}, "
          f"final RTF {total_final / total_audio:.3f}, WER {edits / max(words, 1):.3f}")


if __name__ == "__main__":
    main()
