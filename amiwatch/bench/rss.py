"""Peak resident memory of running processes, from ``/proc`` (Linux).

``VmHWM`` in ``/proc/<pid>/status`` is the kernel's high-water mark of the
process's resident set: the peak RSS so far, not a sample. It vanishes with
the process, so :class:`PeakRss` reads it while the process runs (every
watch tick and once more just before the bench stops it) and keeps the
largest value seen, for the process and each of its descendants.
``resource.getrusage`` would only cover children that have exited and been
waited for, and only their maximum, not each one's.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["vm_hwm_bytes", "descendants", "PeakRss"]


def vm_hwm_bytes(pid: int) -> int | None:
    """The peak RSS of ``pid`` in bytes, or None if it is gone (or not Linux)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return None


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children of each of its threads, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            todo.extend(children)
    return found


class PeakRss:
    """The largest ``VmHWM`` seen for a process and, separately, for each descendant."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._peaks: dict[int, int] = {}

    def sample(self) -> None:
        for pid in (self.pid, *descendants(self.pid)):
            value = vm_hwm_bytes(pid)
            if value is not None and value > self._peaks.get(pid, 0):
                self._peaks[pid] = value

    @property
    def bytes(self) -> int:
        """Peak RSS of the process plus its descendants' peaks (0 if never sampled)."""
        return sum(self._peaks.values())
