"""The bench's sustained rate: start-up excluded, and a counter already moving at the first sample still measured."""

import pytest

from amiwatch.bench.procs import BenchError
from amiwatch.bench.watch import Seen, sustained_rate


def test_the_rate_runs_from_the_last_sample_before_the_counter_moved() -> None:
    seen = [Seen(0.0, {"n": 0}), Seen(5.0, {"n": 0}), Seen(6.0, {"n": 100}), Seen(9.0, {"n": 400})]
    assert sustained_rate(seen, "n") == {"per_s": 100.0, "seconds": 4.0, "amount": 400.0}


def test_a_counter_moving_at_the_first_sample_counts_from_that_sample() -> None:
    seen = [Seen(10.0, {"n": 50}), Seen(11.0, {"n": 250}), Seen(12.0, {"n": 450})]
    assert sustained_rate(seen, "n", scale=2.0) == {"per_s": 400.0, "seconds": 2.0, "amount": 800.0}


@pytest.mark.parametrize(
    ("seen", "words"),
    [([Seen(0.0, {"n": 0}), Seen(1.0, {"n": 0})], "never moved"), ([Seen(0.0, {"n": 9})], "done at the first sample")],
)
def test_no_rate_is_said_why(seen: list[Seen], words: str) -> None:
    with pytest.raises(BenchError, match=words):
        sustained_rate(seen, "n")
