"""Near talker or far speech: is a frame loud enough to be the user at the microphone?

A TV or people across the room are speech too: the frame VAD and the neural
VAD (Silero) call them speech as readily as the user (measured on the
``tv_babble`` fixture: WebRTC 76 % of frames, Silero 72 %, confidence up to
0.97). What tells them apart is level: the user is at the microphone, a far
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
* **Rule**: near when envelope >= reference - ``margin_db`` (15 dB: far talk
  20 dB down is out with 5 dB to spare; so by default frames whose envelope
  is under -35 dBFS are not the user's).

Pure computation, one instance per input stream.
"""

from __future__ import annotations

import numpy as np

from server.echo import level_dbfs

#: The user's speech level assumed before any turn of theirs was heard (dBFS, 90th percentile of speech frames).
DEFAULT_NEAR_DBFS = -20.0
#: How far below the user's level speech still counts as the user's (dB).
NEAR_MARGIN_DB = 12.0
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
        self._default_dbfs = default_dbfs
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

    def push(self, frame: bytes) -> bool:
        """Take the next PCM16 frame; True when it is loud enough to be the user's."""
        self.envelope_dbfs = max(level_dbfs(frame), self.envelope_dbfs - self._release)
        return self.envelope_dbfs >= self.threshold_dbfs

    def note_user_speech(self) -> None:
        """The frame just pushed was speech of the user's current turn."""
        self._turn_levels.append(self.envelope_dbfs)

    def turn_confirmed(self) -> None:
        """The current turn held words: learn the user's level from its speech frames.

        Learning only lowers the reference (a quiet user), never raises it above
        the default: a user who speaks louder in one turn and softer in the next
        (or another person at the microphone) would otherwise lose speech frames
        to the rule and barge in later (measured: ``spoken_session``, whose
        barge-in phrase sits 2 dB under the question at the 90th percentile and
        8 dB at the median, 30 -> 90 ms of overhead).
        """
        if self._turn_levels:
            level = float(np.percentile(self._turn_levels, 90))
            learned = self.reference_dbfs + self.learn_rate * (level - self.reference_dbfs)
            self.reference_dbfs = min(learned, self._default_dbfs)
            self.turns_learned += 1
        self._turn_levels.clear()

    def turn_dropped(self) -> None:
        """The current turn was not words (or was abandoned): forget its levels."""
        self._turn_levels.clear()
