"""Realistic smart-meter data with exact ground truth, for testing, demos and scoring detection.

``amiwatch simulate`` (``simulators.cli``) runs a ``Simulation``
(``generate``): a fleet of areas and meters (``fleet``) consumes
(``load_shapes``) with consistent electrical values (``electrical``);
planned anomalies (``plan`` + ``anomalies``) and data faults (``faults``,
``malformed``) are injected into each ``AreaDay`` (``areaday``); readings
become raw messages (``messages``) delivered to Kafka and/or files
(``sinks``), with labels (``labels``) and a summary (``summary``) that a
plain consumer can recount (``recount``).
"""
