"""amiwatch: streaming anomaly detection for AMI smart-meter readings.

The ``amiwatch`` package holds what every service shares: settings, the
command line, topic names and Kafka plumbing. Detection logic lives in
``services/detector``; the services themselves under ``services/``.
"""

__version__ = "0.1.0"
