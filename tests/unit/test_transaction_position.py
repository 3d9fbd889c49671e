"""The transaction-position header (amiwatch/kafka/transaction_position.py) against partition logs written by
one or two transactional producers: whenever its rules call the hole after a frame a marker, it is one."""

from __future__ import annotations

import doctest
import random

import pytest

from amiwatch.kafka import transaction_position
from amiwatch.kafka.transaction_position import ends_transaction, position_headers, read_position, starts_transaction

def test_doctests() -> None:
    result = doctest.testmod(transaction_position)
    assert result.attempted > 0 and result.failed == 0


Entry = tuple[int, tuple[int, int] | None]  # (producer, position of a record; None: the producer's marker)


def _log(rng: random.Random, producers: int, transactions: int) -> list[Entry]:
    """One partition's log: each producer writes transactions of 1–4 records (with their positions) and a
    marker, its own entries in order; the producers' entries interleave at random."""
    streams = []
    for producer in range(producers):
        entries: list[Entry] = []
        for _ in range(transactions):
            k = rng.randint(1, 4)
            entries.extend((producer, read_position(h)) for h in position_headers([0] * k))
            entries.append((producer, None))
        streams.append(entries)
    log: list[Entry] = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        log.append(stream.pop(0))
    return log


def _stable(prefix: list[Entry]) -> bool:
    """No transaction is open at the end of ``prefix``: its length can be the partition's last stable offset."""
    last: dict[int, tuple[int, int] | None] = {}
    for producer, position in prefix:
        last[producer] = position
    return all(position is None for position in last.values())


@pytest.mark.parametrize("producers", [1, 2])
def test_a_hole_called_a_marker_is_one(producers: int) -> None:
    """Two transactional writers on one partition (a stalled ingest worker and its successor) cannot fool it."""
    rng = random.Random(producers)
    agent = tail = 0
    for _ in range(300):
        log = _log(rng, producers, transactions=6)
        for a, (_, position) in enumerate(log):
            if position is None or not ends_transaction(position):
                continue
            # The agent's rule: the next frame it is handed is at a + 2 (whatever it lost before) and starts its transaction.
            if a + 2 < len(log) and starts_transaction(log[a + 2][1]):
                agent += 1
                assert log[a + 1][1] is None, (log, a)
            # The tail rule: the partition's last stable offset is a + 2.
            if a + 2 <= len(log) and _stable(log[: a + 2]):
                tail += 1
                assert log[a + 1][1] is None, (log, a)
    assert agent > 100 and tail > 100


def test_headers_count_per_partition_in_send_order() -> None:
    headers = position_headers([3, 1, 3, None, 3])
    assert [read_position(h) for h in headers] == [(0, 3), (0, 1), (1, 3), (0, 1), (2, 3)]


@pytest.mark.parametrize("value", [b"", b"1", b"a/b", b"2/2", b"-1/3", b"1/2/3"])
def test_a_malformed_header_is_no_position(value: bytes) -> None:
    assert read_position([(transaction_position.HEADER, value)]) is None
