"""The reliability suite: rewardserve under load, faults and bad input, with figures.

Scenarios (one module each): a bounded soak with every answer checked against its solo score
(:mod:`.soak`), cancelled and expired items and an injected runner failure inside one batch
(:mod:`.faults`), overload (:mod:`.overload`), SIGTERM under load (:mod:`.sigterm`), broken
model bundles (:mod:`.bad_models`) and property-based bad input (:mod:`.bad_input`). Each
returns its figures and pass/fail checks; :mod:`.report` prints them as one table and writes
``results.json`` and ``results.md``. Run ``python -m rewardserve.benchmarks.reliability`` (``--quick``:
the fast subset the test suite runs).
"""
