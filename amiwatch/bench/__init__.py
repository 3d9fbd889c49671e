"""``amiwatch bench``: what one machine carries, measured on the real broker.

One repetition (:mod:`amiwatch.bench.repetition`) runs these phases, each on
topics of its own under a fresh prefix, so runs never see each other's data:

1. **load**: ``amiwatch simulate`` publishes a fleet's archive and raw
   readings (concentrator uploads, or one message per reading with
   ``--per-reading``) before anything consumes them (:mod:`.fleet`);
2. **bare consumer**: a plain aiokafka consumer drains that raw topic and
   does nothing else: the ceiling any Python consumer of this broker has
   (:mod:`.bare`);
3. **ingest alone**: ``amiwatch ingest`` turns the same raw topic into frames;
4. **detector alone**: ``amiwatch detect`` consumes those frames, writing
   alerts and its changelogs; afterwards the ``area_state`` changelog gives
   state bytes per meter and changelog bytes per reading (:mod:`.changelog`);
5. **pipeline**: the fleet loaded again under a second prefix, with the API
   (``amiwatch api serve``, its sink into SQLite) and the detector already
   up, then ingest started: readings/s until every alert record is in the
   API's store;
6. **latency**: with that pipeline still running, the simulator publishes
   the next day at about half the pipeline's rate while the API is polled;
   each alert's latency is from the Kafka timestamp of its area's raw
   message(s) for the alert's ``last_seen`` interval to the moment the API
   first returned the alert with that ``last_seen`` (:mod:`.latency`).

Sustained rates are measured from the services' own Prometheus counters
(:mod:`.scrape`, :mod:`.watch`), from their first progress to the moment the
work is done, so interpreter start-up and group joins are not counted.
Services are subprocesses (``python -m amiwatch.cli …``); their peak RSS is
the kernel's high-water mark, ``VmHWM`` in ``/proc/<pid>/status``, read
while they run (:mod:`.rss`). With ``--repeat N`` every figure is reported
as the median of the N repetitions with its min and max (:mod:`.report`).
"""
