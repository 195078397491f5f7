"""Near talker or far speech: is a frame loud enough to be the user at the microphone?

A TV or people across the room are speech too: the frame VAD and the neural
VAD (Silero) call them speech as readily as the user (measured on the
``tv_babble`` fixture: WebRTC 81 % of frames, Silero 82 %, probability up
to 1.00). What tells them apart is level: the user is at the microphone, a far
talker is typically 20 dB or more below. So the session keeps an estimate of
the user's own speech level and counts a frame as the user's only when its
level envelope is within ``margin_db`` of it (docs/bargein.md, "Near talker
and far speech"):

* **Envelope**: frame RMS in dBFS with instant attack and a release of
  ``release_db_per_s`` (33 dB/s: 1 dB per 30 ms frame), so the quiet frames
  inside a word (a consonant, the tail of a syllable) keep the level of the
  syllable before them. Measured on the 11 speech fixtures: per-frame levels
  drop 30-40 % of the Silero speech frames 15 dB below the talker's level,
  the envelope at most 3 of ~90.
* **Reference**: the 90th percentile of the envelope over the speech frames of
  the user's confirmed turns (a final transcript with words), averaged over
  turns (each new turn weighs ``learn_rate``). Until the first confirmed turn
  it is ``default_dbfs`` (-20 dBFS: the fixtures' speech sits at -13..-21 dBFS,
  a browser microphone with automatic gain control about the same).
* **Rule**: near when envelope >= reference - ``margin_db`` (10 dB: far talk
  20 dB under the user, judged over a second, reaches 10 dB under them at its
  loudest; by default frames whose envelope is under -30 dBFS are not the
  user's). The end-of-turn gate uses it frame by frame; barge-in judges
  the candidate's whole confirmation audio (:class:`NearConfirmer`).

Pure computation, one instance per input stream.
"""

from __future__ import annotations

import numpy as np

from server.echo import level_dbfs
from server.vad import SpeechConfirmer, frame_bytes

#: The user's speech level assumed before any turn of theirs was heard (dBFS, 90th percentile of speech frames).
DEFAULT_NEAR_DBFS = -20.0
#: How far below the user's level speech still counts as the user's (dB).
NEAR_MARGIN_DB = 10.0
#: Envelope release (dB per second).
RELEASE_DB_PER_S = 33.0


class NearTalker:
    """Tracks the user's speech level and says whether each frame can be the user's.

    Call :meth:`push` once per input frame (it updates the envelope), then
    :meth:`note_user_speech` for frames that were speech of a user turn, and
    :meth:`turn_confirmed` / :meth:`turn_dropped` when that turn is recognised
    as words or not.
    """

    def __init__(
        self,
        frame_ms: int = 30,
        *,
        margin_db: float = NEAR_MARGIN_DB,
        default_dbfs: float = DEFAULT_NEAR_DBFS,
        release_db_per_s: float = RELEASE_DB_PER_S,
        learn_rate: float = 0.5,
    ) -> None:
        if margin_db < 0 or release_db_per_s <= 0 or not 0 < learn_rate <= 1:
            raise ValueError(
                f"need margin_db >= 0, release_db_per_s > 0 and 0 < learn_rate <= 1; got {margin_db}, "
                f"{release_db_per_s}, {learn_rate}"
            )
        self.margin_db = margin_db
        self.reference_dbfs = default_dbfs
        self.learn_rate = learn_rate
        self._release = release_db_per_s * frame_ms / 1000.0
        self.envelope_dbfs = -120.0
        self._turn_levels: list[float] = []
        #: Confirmed turns the reference was learned from (0: still the default).
        self.turns_learned = 0

    @property
    def threshold_dbfs(self) -> float:
        """Envelope level under which a frame is not the user's."""
        return self.reference_dbfs - self.margin_db

    def push(self, frame: bytes | np.ndarray) -> bool:
        """Take the next PCM16 frame (bytes or int16 samples); True when it is loud enough to be the user's."""
        self.envelope_dbfs = max(level_dbfs(frame), self.envelope_dbfs - self._release)
        return self.envelope_dbfs >= self.threshold_dbfs

    def holds_near_speech(self, pcm: bytes, sample_rate: int = 16000) -> bool:
        """True when the 90th percentile of the 30 ms frame levels of ``pcm`` reaches the threshold.

        For a stretch of ~1 s (a barge-in candidate's audio): speech that fills
        a barge-in window fills more than a tenth of it, so the statistic sits
        in the talker's loud frames, whichever frames a word's quiet edges fall on.
        """
        step = frame_bytes(sample_rate, 30)
        # Digital silence is -inf dBFS: floored, or the percentile's interpolation gives NaN (and "far").
        levels = [max(level_dbfs(pcm[i : i + step]), -120.0) for i in range(0, len(pcm) - step + 1, step)]
        return bool(levels) and float(np.percentile(levels, 90)) >= self.threshold_dbfs

    def note_user_speech(self) -> None:
        """The frame just pushed was speech of the user's current turn."""
        self._turn_levels.append(self.envelope_dbfs)

    def end_turn(self) -> list[float]:
        """The current turn ended: its speech frames' envelope levels (dBFS), to
        :meth:`learn` from once it is recognised as words; the next turn starts empty.
        Several ended turns can wait for their transcripts at once."""
        levels, self._turn_levels = self._turn_levels, []
        return levels

    def learn(self, levels: list[float]) -> None:
        """A turn held words: move the reference ``learn_rate`` of the way to the
        90th percentile of its speech frames' envelope ``levels`` (dBFS)."""
        if levels:
            level = float(np.percentile(levels, 90))
            self.reference_dbfs += self.learn_rate * (level - self.reference_dbfs)
            self.turns_learned += 1

    def turn_confirmed(self) -> None:
        """The current turn held words: learn from it (:meth:`learn`)."""
        self.learn(self.end_turn())

    def turn_dropped(self) -> None:
        """The current turn was not words (or was abandoned): forget its levels."""
        self._turn_levels.clear()


class NearConfirmer:
    """Barge-in confirmation: the candidate's audio must be near talk, then the neural VAD must hear speech.

    Wraps the session's :class:`server.vad.SpeechConfirmer` (``None``: the level
    check alone). The level is judged on the whole confirmation audio, not per
    frame: dropping a word's quiet edge frames from the barge-in counter made
    the latency of "Stop, tell me about bonds" jump between 465 and 846 ms with
    the 30 ms frame alignment.
    """

    def __init__(self, inner: SpeechConfirmer | None, near: NearTalker) -> None:
        self.inner = inner
        self.near = near
        self.name = f"{inner.name}+near" if inner is not None else "near"
        #: The inner confirmer's minimum audio (the level check needs none of its own).
        self.min_audio_s = inner.min_audio_s if inner is not None else 0.0

    def has_speech(self, pcm: bytes, sample_rate: int) -> bool:
        if not self.near.holds_near_speech(pcm, sample_rate):
            return False
        return self.inner is None or self.inner.has_speech(pcm, sample_rate)

    def speech_probabilities(self, pcm: bytes, sample_rate: int) -> list[float]:
        return [] if self.inner is None else self.inner.speech_probabilities(pcm, sample_rate)

