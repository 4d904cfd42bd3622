"""The queue benchmark's ratios pair the two stacks' measurements of the same round."""

from bench.queue_throughput import Measurement, paired_ratios


def _row(round_no: int, stack: str, per_s: float) -> Measurement:
    return Measurement(round_no, stack, "noop", 1000, 1000 / per_s, per_s, 0.0, 0.0, 0)


def test_a_ratio_is_taken_in_each_round_not_between_the_medians() -> None:
    # The machine is slow in round 1 and fast in rounds 2 and 3; Switchboard is as fast as
    # Dramatiq in every round, except that its slow round is the median one of its own.
    rows = [
        _row(1, "switchboard", 2000),
        _row(1, "dramatiq", 2000),
        _row(2, "switchboard", 3000),
        _row(2, "dramatiq", 3000),
        _row(3, "switchboard", 2100),
        _row(3, "dramatiq", 3600),
        _row(3, "rq", 90),
    ]
    ratios = paired_ratios(rows, "noop", "switchboard", "dramatiq", rounds=3)
    assert ratios == [1.0, 1.0, 2100 / 3600]
    # The ratio of the medians (2100 / 3000) would call it 0.7x.


def test_only_the_named_workload_counts() -> None:
    rows = [_row(1, "switchboard", 500), _row(1, "dramatiq", 1000)]
    rows.append(Measurement(1, "switchboard", "write_row", 10, 1.0, 10.0, 0.0, 0.0, 0))
    assert paired_ratios(rows, "noop", "switchboard", "dramatiq", rounds=1) == [0.5]
