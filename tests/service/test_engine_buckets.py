"""Queue-wait and inference histograms resolve the sub-10 ms range where max_wait_ms and small batches live."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from rewardserve.service.metrics import ServiceMetrics


def _bucket_counts(metrics: ServiceMetrics, name: str) -> dict[float, float]:
    return {float(s.labels["le"]): s.value for m in metrics.registry.collect() for s in m.samples
            if s.name == f"{name}_bucket"}


def test_a_5ms_wait_and_a_6ms_wait_fall_in_different_buckets():
    metrics = ServiceMetrics(CollectorRegistry())
    for seconds in (0.0003, 0.005, 0.0055):
        metrics.queue_wait.labels("m").observe(seconds)
        metrics.inference.labels("m").observe(seconds)
    for name in ("rewardserve_queue_wait_seconds", "rewardserve_inference_seconds"):
        counts = _bucket_counts(metrics, name)
        assert counts[0.0005] == 1 and counts[0.005] == 2 and counts[0.006] == 3  # 1 ms buckets: 0, 2, 3
