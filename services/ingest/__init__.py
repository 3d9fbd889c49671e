"""Ingest: raw collection-system readings → canonical area frames and dead letters, exactly once.

The pure pipeline, in the order a record meets it (no Kafka in any of these):

- :mod:`~services.ingest.validation` (+ :mod:`~services.ingest.fastpath`): bytes → readings + rejections, by contract
- :mod:`~services.ingest.normalise`: kWh, aligned interval end, clock offset, phase columns
- :mod:`~services.ingest.admission`: the state-dependent checks (event-time horizon, archive membership)
- :mod:`~services.ingest.frames`: readings → frames on event time (complete, grace, idle, late corrections)
- :mod:`~services.ingest.partition`: one input partition's state and the replay rule after a restart
- :mod:`~services.ingest.checkpoint`: the record committed with each transaction, and how it is read back
- :mod:`~services.ingest.dlq`: the dead-letter record

Around it: :mod:`~services.ingest.archive_view` (the archive, followed from its
topic), :mod:`~services.ingest.compacted` (reading compacted topics to their
end), :mod:`~services.ingest.service` (consumer, transactional producer,
rebalances), :mod:`~services.ingest.metrics` and :mod:`~services.ingest.cli`
(``amiwatch ingest``).
"""
