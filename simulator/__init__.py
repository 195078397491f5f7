"""A client simulator for refinery-mock: does barge-in fire when the user speaks,
only then, and how fast? See ``docs/simulator.md``."""
