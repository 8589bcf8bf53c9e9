"""CPU seconds of a process tree, read from /proc (Linux): a server and all its children.

    from procstat import tree_cpu_seconds
    before = tree_cpu_seconds(pid); ...load...; cpu = tree_cpu_seconds(pid) - before

utime + stime of every live process whose ancestry reaches `pid` (all their
threads included). Workers that stay up for the whole load run (MLServer's
inference pool, uvicorn) are counted; a child that exits during the run takes
its CPU with it, so snapshot around runs in which the tree is stable.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ppid, (utime + stime) / _TICK


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents[int(entry.name)] = st[0]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and its live descendants so far."""
    total = 0.0
    for pid in tree_pids(root):
        st = _stat(pid)
        if st is not None:
            total += st[1]
    return total


_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and its live descendants, summed.

    Pages shared between them (libraries, copy-on-write) count once per
    process, so the sum is an upper bound of what the tree holds.
    """
    total = 0
    for pid in tree_pids(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return total
