"""A server's own Prometheus figures: counters and histogram buckets from ``/metrics``, and quantiles.

Quantiles follow Prometheus' ``histogram_quantile``: find the bucket holding the q-th
observation in the *difference* of two scrapes (the load point only), interpolate linearly
inside it. The bucket's upper bound is returned too: with coarse buckets (1 ms, 2.5 ms, ...)
the interpolated value is a guess and the bound is what the histogram actually proves.

Example::

    before = scrape(9400); ...; after = scrape(9400)
    q = quantile(bucket_delta(after, before, "rewardserve_queue_wait_seconds"), 0.99)
    q["value_s"], q["upper_bound_s"]
"""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# Counters read from rewardserve's /metrics (summed over models and labels).
COUNTERS = {
    "items": "rewardserve_items_total",
    "tokens": "rewardserve_tokens_total",
    "batches": "rewardserve_batch_size_count",
    "padded_tokens": "rewardserve_batch_padded_tokens_sum",
    "inference_s": "rewardserve_inference_seconds_sum",
    "queue_wait_s": "rewardserve_queue_wait_seconds_sum",
    "queue_wait_n": "rewardserve_queue_wait_seconds_count",
}
# Histograms whose buckets are kept (summed over models): the trickle check reads their p99.
HISTOGRAMS = ("rewardserve_queue_wait_seconds", "rewardserve_inference_seconds")


def parse(text: str) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """(counters of :data:`COUNTERS`, {histogram: {upper bound: cumulative count}}) of one exposition."""
    wanted = {v: k for k, v in COUNTERS.items()}
    counters = dict.fromkeys(COUNTERS, 0.0)
    hists: dict[str, dict[float, float]] = {h: {} for h in HISTOGRAMS}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in wanted:
                counters[wanted[s.name]] += s.value
            elif s.name.endswith("_bucket") and s.name[: -len("_bucket")] in hists:
                le = float(s.labels["le"])
                h = hists[s.name[: -len("_bucket")]]
                h[le] = h.get(le, 0.0) + s.value
    return counters, hists


def scrape(port: int, host: str = "127.0.0.1") -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Counters and histogram buckets of the server's ``/metrics``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        return parse(r.read().decode())


def bucket_delta(after: dict[str, dict[float, float]], before: dict[str, dict[float, float]],
                 name: str) -> dict[float, float]:
    """Cumulative bucket counts of ``name`` observed between two scrapes."""
    a, b = after.get(name, {}), before.get(name, {})
    return {le: a[le] - b.get(le, 0.0) for le in sorted(a)}


def quantile(buckets: dict[float, float], q: float) -> dict:
    """The q-quantile of cumulative ``buckets`` (upper bound -> count): interpolated and its bucket's bound."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return {"value_s": math.nan, "upper_bound_s": math.nan, "lower_bound_s": math.nan, "count": 0}
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):  # beyond the largest finite bucket: all that is known is the bound below
                return {"value_s": lower, "upper_bound_s": math.inf, "lower_bound_s": lower, "count": int(total)}
            inside = count - below
            value = lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            return {"value_s": value, "upper_bound_s": le, "lower_bound_s": lower, "count": int(total)}
        lower, below = le, count
    return {"value_s": lower, "upper_bound_s": math.inf, "lower_bound_s": lower, "count": int(total)}
