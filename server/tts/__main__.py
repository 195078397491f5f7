"""Command line: speak text to a WAV file, list the voice mapping, or benchmark.

    python -m server.tts say "Hello there." --voice en-GB-LibbyNeural --out hello.wav
    python -m server.tts voices
    python -m server.tts bench --engine espeak --engine hibari
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import soundfile as sf

from . import available_tts_engines, get_tts_engine, normalize_text
from .voices import ESPEAK_LOCALES

BENCH_TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
    "Our revenue grew 5% to $2,500 in the 3rd quarter, and we expect similar results next year."
)


def _say(args: argparse.Namespace) -> int:
    engine = get_tts_engine(args.engine)
    voice = engine.voice_for(args.language, args.voice)
    text = normalize_text(args.text) if args.normalize else args.text
    pcm = engine.synthesize(text, voice, args.rate)
    sf.write(args.out, np.frombuffer(pcm, dtype="<i2"), args.rate, subtype="PCM_16")
    print(f"{voice.label} ({voice.language}, {voice.gender}) for {args.voice or args.language}: "
          f"{len(pcm) / 2 / args.rate:.2f} s -> {args.out}")
    return 0


def _voices(args: argparse.Namespace) -> int:
    if args.engine != "espeak":
        v = get_tts_engine(args.engine).voice_for(None, None)
        print(f"every language -> {v.label} ({v.language}, {v.gender})")
        return 0
    print(f"{'locale':16} {'male':24} female")
    for locale, entry in ESPEAK_LOCALES.items():
        print(f"{locale:16} {entry.base + '+' + entry.male:24} {entry.base}+{entry.female}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    text = normalize_text(BENCH_TEXT)
    for name in args.engine or available_tts_engines():
        t0 = time.perf_counter()
        engine = get_tts_engine(name)
        load = time.perf_counter() - t0
        voice = engine.voice_for("en-US", None)
        engine.synthesize("Warm up.", voice, args.rate)
        rtfs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            pcm = engine.synthesize(text, voice, args.rate)
            rtfs.append((time.perf_counter() - t0) / (len(pcm) / 2 / args.rate))
        print(f"{name:8} load {load:.2f} s  audio {len(pcm) / 2 / args.rate:.1f} s  "
              f"RTF median {statistics.median(rtfs):.4f} (min {min(rtfs):.4f}, max {max(rtfs):.4f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.tts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    say = sub.add_parser("say", help="synthesise text to a WAV file")
    say.add_argument("text")
    say.add_argument("--engine", default="espeak", choices=available_tts_engines())
    say.add_argument("--voice", help="cloud voice name, e.g. en-GB-LibbyNeural")
    say.add_argument("--language", help="BCP-47 language, e.g. en-AU")
    say.add_argument("--rate", type=int, default=24000)
    say.add_argument("--out", default="tts.wav")
    say.add_argument("--no-normalize", dest="normalize", action="store_false")
    say.set_defaults(func=_say)
    voices = sub.add_parser("voices", help="show the locale -> local voice table")
    voices.add_argument("--engine", default="espeak", choices=available_tts_engines())
    voices.set_defaults(func=_voices)
    bench = sub.add_parser("bench", help="real-time factor per engine")
    bench.add_argument("--engine", action="append", choices=available_tts_engines())
    bench.add_argument("--rate", type=int, default=16000)
    bench.add_argument("--repeat", type=int, default=5)
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
