"""bench-dialer reports the round of median utilization of its repeated default runs."""

from __future__ import annotations

from typing import Any

from bench.dialer import median_round


def _round(utilization: float, p99: float) -> dict[str, Any]:
    return {"slot_utilization": utilization, "dispatch_gap_p99_ms": p99,
            "cpu_ms_per_call_switchboard": 6.0, "load_average_1m": 1.0}  # fmt: skip


def test_the_median_round_is_reported_whole_with_every_round_beside_it() -> None:
    rounds = [_round(0.86, 100.0), _round(0.83, 400.0), _round(0.85, 200.0)]
    chosen = median_round(rounds)
    # The median round's own figures, not a mix of medians from different rounds.
    assert (chosen["slot_utilization"], chosen["dispatch_gap_p99_ms"]) == (0.85, 200.0)
    assert [r["slot_utilization"] for r in chosen["rounds"]] == [0.86, 0.83, 0.85]


def test_an_even_count_takes_the_lower_middle_and_one_round_stands_alone() -> None:
    assert median_round([_round(0.9, 1.0), _round(0.8, 2.0)])["slot_utilization"] == 0.8
    alone = median_round([_round(0.7, 3.0)])
    assert alone["slot_utilization"] == 0.7 and "rounds" not in alone
