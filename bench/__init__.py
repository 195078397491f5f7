"""``make bench``: load, per-frame costs, engines and simulator speed of refinery-mock.

Figures only (written to ``bench/results.json`` and printed as a table); no
pass/fail. See the README section "Performance" and docs/bench.md.
"""
