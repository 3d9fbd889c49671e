"""``amiwatch evaluate``: the detector scored against a labelled simulated scenario.

``run`` generates the scenario and runs it offline or through Kafka;
``matching`` decides which alert is true and which label was found (the
rule is in its docstring); ``metrics`` turns that into rates per type,
attribution accuracy and the data-fault check; ``report`` prints and
serialises the result; ``kafka`` is the ``--via-kafka`` source; ``cli``
the command.
"""
