"""``amiwatch backtest``: historical long-form readings through the live detection pipeline.

``table`` reads the file (CSV or Parquet, any column names); ``survey``
learns its order, interval and meters; ``archive`` loads or infers the
customer archive and its versions over time; ``events`` attaches meter
events; ``replay`` turns rows into the raw messages a head-end would send
and feeds them to :class:`services.detector.offline.OfflineRunner`;
``scores`` writes the per-meter, per-day table; ``output`` the alerts;
``run`` ties them together; ``cli`` is the command.
"""
