"""Latency summaries shared by the benchmarks: percentiles of samples in seconds,
reported in milliseconds."""

from __future__ import annotations

import statistics


def summary(samples: list[float]) -> dict[str, float]:
    """``p50`` (the median), ``p95``, ``p99``, ``min`` and ``max`` in ms, and ``n``."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return {
        "p50": statistics.median(ordered) * 1e3,
        "p95": pick(0.95),
        "p99": pick(0.99),
        "min": ordered[0] * 1e3,
        "max": ordered[-1] * 1e3,
        "n": len(ordered),
    }
