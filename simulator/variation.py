"""Seeded variation of a scenario between repeats ("takes"): what varies in life.

A take of a scenario is the scenario with, drawn from one seed:

- the user's onset: every utterance moved by ``U(-onset_s, +onset_s)``
  (an ``at`` time is kept >= 0; an anchored one gets it added to ``delay_s``);
- the speech level: each utterance's ``gain_db`` plus ``U(-level_db, +level_db)``;
- the echo: gain scaled by ``U(-echo_gain_db, +echo_gain_db)`` dB, delay plus
  ``U(0, echo_delay_ms)`` ms (a real path is never shorter than modelled);
- the noise: where the scenario has noise, its level plus ``U(-noise_db, +noise_db)``
  (capped at 0 dBFS) and a new noise seed (other pink noise, another stretch of a file);
- the network: jitter ``U(0, jitter_ms)`` on each message, both directions,
  with its own seed (see :class:`simulator.scenario.NetworkModel`).

The seed of a take depends only on the base seed, the scenario's name and the
repeat index, never on the setting run: every setting of a sweep meets the same
takes (common random numbers), so the differences between settings are the
settings', not the dice's.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simulator.scenario import Scenario


@dataclass(frozen=True)
class Variation:
    """Ranges of the take-to-take variation (defaults: the issue's "what varies in life")."""

    onset_s: float = 0.3
    level_db: float = 6.0
    echo_gain_db: float = 3.0
    echo_delay_ms: float = 30.0
    noise_db: float = 3.0
    jitter_ms: float = 20.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: No variation at all: a take is the scenario as written (plus pinned intent).
NONE = Variation(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def take_seed(base_seed: int, scenario_name: str, repeat: int) -> int:
    """The seed of take ``repeat`` of a scenario (a 32-bit integer, stable across machines)."""
    return int(np.random.SeedSequence([base_seed, zlib.crc32(scenario_name.encode()), repeat]).generate_state(1)[0])


def pin_intent(sc: Scenario) -> Scenario:
    """A one-utterance scenario's ``expect.interrupt`` as that utterance's ``expect_interrupt``.

    The metrics decide "should this speech interrupt?" from the floor of the
    setting being run (:mod:`simulator.metrics`): a threshold longer than a
    short "stop" would make missing it "expected". Across settings the user's
    intent must stay put, and a scenario with one utterance of one speech span
    (by its sidecar) states it in ``expect.interrupt``. Several utterances or
    spans (a recorded session), or no sidecar: unchanged.
    """
    if len(sc.utterances) != 1 or sc.expect.interrupt is None or sc.utterances[0].expect_interrupt is not None:
        return sc
    if _sidecar_spans(sc.utterances[0].wav) != 1:
        return sc
    u = sc.utterances[0].model_copy(update={"expect_interrupt": sc.expect.interrupt})
    return sc.model_copy(update={"utterances": [u]})


def _sidecar_spans(wav: Path) -> int | None:
    try:
        return len(json.loads(wav.with_suffix(".json").read_text(encoding="utf-8")).get("speech") or [])
    except (OSError, ValueError, AttributeError):
        return None


def vary(sc: Scenario, seed: int, variation: Variation = Variation()) -> Scenario:
    """Take ``seed`` of scenario ``sc``: the same seed always gives the same take."""
    rng = np.random.default_rng(seed)
    v = variation

    def u(span: float) -> float:  # one draw per quantity, even at span 0, so ranges don't shift other draws
        x = float(rng.uniform(-1.0, 1.0))
        return x * span

    utterances = []
    for utt in sc.utterances:
        shift, level = u(v.onset_s), u(v.level_db)
        if utt.at is not None:
            timing = {"at": max(0.0, utt.at + shift)}
        else:
            timing = {"delay_s": utt.delay_s + shift}
        utterances.append(utt.model_copy(update={**timing, "gain_db": utt.gain_db + level}))
    gain_db, delay = u(v.echo_gain_db), abs(u(v.echo_delay_ms))
    echo = sc.echo.model_copy(update={"gain": sc.echo.gain * 10 ** (gain_db / 20), "delay_ms": sc.echo.delay_ms + delay})
    noise_shift = u(v.noise_db)
    noise_seed, net_seed = (int(x) for x in rng.integers(0, 2**31 - 1, size=2))
    noise = sc.noise
    if noise.db is not None:
        noise = noise.model_copy(update={"db": min(0.0, noise.db + noise_shift), "seed": noise_seed})
    network = sc.network.model_copy(update={"jitter_ms": sc.network.jitter_ms + v.jitter_ms, "seed": net_seed})
    return sc.model_copy(update={"utterances": utterances, "echo": echo, "noise": noise, "network": network})
