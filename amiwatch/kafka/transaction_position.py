"""Where a record sits among its partition's records of one transaction, carried in a header.

Why. Every committed transaction leaves a marker that takes an offset, so
a reader that applies a partition's records in offset order sees a hole of
one offset after each transaction. The detector must tell that hole from
records its consumer never handed over (services/detector/gaps.py), and
reading the hole from the broker costs a round trip per transaction per
partition: at part load, with small transactions, most of the detector's
time. The writer knows where each record sits in its transaction; with
that in a header (``amiwatch-txn: i/k``, the i-th of k records the
transaction wrote to the partition, from 0), a reader knows the hole
without reading it:

    the record last applied at offset A was the last of its transaction
    (i = k − 1), and the next one is the first of its own (i = 0) at A + 2.

Then offset A + 1 can only be the first transaction's commit marker. A
producer's own records and its marker are in order, so the marker of A's
transaction lies after A, and before the next transaction of the same
producer. Another producer's record at A + 1 would push that marker past
A + 1, so the record at A + 2 could not be a first one. Likewise, if A's
transaction was its last and the partition's last stable offset is A + 2,
offset A + 1 is that marker: a committed record of another producer there
would have its own marker after it. (Two transactional writers on one
partition happen only around a stalled ingest worker.) A record without
the header (another writer, an older ingest) is read as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["HEADER", "TransactionPosition", "ends_transaction", "position_headers", "read_position", "starts_transaction"]

HEADER = "amiwatch-txn"

TransactionPosition = tuple[int, int]  # (i, k): the i-th (from 0) of the k records a transaction wrote to a partition


def position_headers(partitions: Sequence[int | None]) -> list[list[tuple[str, bytes]]]:
    """The header of each record of one transaction, given the partition each is sent to, in send order.

    >>> position_headers([0, 1, 0, 0])
    [[('amiwatch-txn', b'0/3')], [('amiwatch-txn', b'0/1')], [('amiwatch-txn', b'1/3')], [('amiwatch-txn', b'2/3')]]
    """
    totals: dict[int | None, int] = {}
    for p in partitions:
        totals[p] = totals.get(p, 0) + 1
    seen: dict[int | None, int] = {}
    out = []
    for p in partitions:
        i = seen[p] = seen.get(p, -1) + 1
        out.append([(HEADER, f"{i}/{totals[p]}".encode())])
    return out


def read_position(headers: Iterable[tuple[str, bytes]] | None) -> TransactionPosition | None:
    """The record's position from its headers; None without a well-formed one.

    >>> read_position([("x", b"1"), ("amiwatch-txn", b"2/3")]), read_position(None), read_position([("amiwatch-txn", b"3/3")])
    ((2, 3), None, None)
    """
    for key, value in headers or ():
        if key != HEADER:
            continue
        try:
            i, k = (int(part) for part in bytes(value).split(b"/"))
        except ValueError:
            return None
        return (i, k) if 0 <= i < k else None
    return None


def ends_transaction(position: TransactionPosition | None) -> bool:
    """The record was the last its transaction wrote to the partition (a marker follows it).

    >>> ends_transaction((2, 3)), ends_transaction((1, 3)), ends_transaction(None)
    (True, False, False)
    """
    return position is not None and position[0] == position[1] - 1


def starts_transaction(position: TransactionPosition | None) -> bool:
    """The record was the first its transaction wrote to the partition.

    >>> starts_transaction((0, 3)), starts_transaction((1, 3)), starts_transaction(None)
    (True, False, False)
    """
    return position is not None and position[0] == 0
