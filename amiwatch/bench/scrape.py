"""Read counters from a service's Prometheus ``/metrics`` page.

Only what the bench needs: the sum of every sample of one metric (all label
values), from the text exposition format. A service that does not answer
(starting, stopping) reads as None, not as zero.
"""

from __future__ import annotations

import urllib.error
import urllib.request

__all__ = ["scrape", "total"]


def scrape(url: str, timeout: float = 2.0) -> str | None:
    """The ``/metrics`` text at ``url``, or None if it cannot be read now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()
    except (OSError, urllib.error.URLError):
        return None


def total(text: str, name: str) -> float:
    """The sum of every sample named exactly ``name`` (any labels) in exposition ``text``."""
    result = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " "):
            continue  # a longer name with this prefix (``_created``, another metric)
        value = rest.rsplit("}", 1)[1] if rest[:1] == "{" else rest
        try:
            result += float(value.split()[0])  # an optional timestamp may follow the value
        except (IndexError, ValueError):
            continue
    return result
