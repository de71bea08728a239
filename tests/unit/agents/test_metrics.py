"""Per-query counters: dead letters by reason label, the cumulative latency histogram."""

from __future__ import annotations

from agents.metrics import LATENCY_BUCKETS, QueryStats, reason_label


def test_reason_labels_keep_the_fixed_part_of_a_reason() -> None:
    assert reason_label("late") == "late"
    assert reason_label("CastError: cannot cast 'x' to INTEGER") == "CastError"
    assert reason_label("value is not valid JSON: unexpected character") == (
        "value is not valid JSON"
    )
    assert reason_label("") == "unknown"
    assert len(reason_label("x" * 500)) <= 60


def test_latency_histogram_counts_every_batch_since_start() -> None:
    stats = QueryStats("q", "src", "out", "stateless")
    for s in (0.0005, 0.003, 0.003, 20.0):
        stats.observe_latency(s)
    assert sum(stats.latency_counts) == 4
    assert stats.latency_counts[0] == 1  # <= 1 ms
    assert stats.latency_counts[LATENCY_BUCKETS.index(0.005)] == 2
    assert stats.latency_counts[-1] == 1  # +Inf
    assert abs(stats.latency_sum - 20.0065) < 1e-9
    stats.add_dead_letters({"late": 2})
    stats.add_dead_letters({"late": 1, "CastError": 1})
    assert stats.as_dict()["dead_letter_reasons"] == {"CastError": 1, "late": 3}
