"""Which process owns a run, and whether it has ended: how runs killed by a signal are told from live ones."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def run_owner() -> dict[str, Any]:
    """This process, as a run records its owner: pid and host, and on Linux the boot id and the process's
    start time (clock ticks since boot), so that a later process given the same pid is not the owner."""
    owner: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    boot, stat = _boot_id(), _proc_stat(os.getpid())
    if boot is not None and stat is not None:
        owner.update(boot_id=boot, start_ticks=stat[1])
    return owner


def owner_gone(owner: Mapping[str, Any] | None) -> bool:
    """Whether a run's recorded owner has certainly ended. Only a process on this host can be checked; on
    Linux a zombie, a pid now held by a later process or a reboot count as gone, elsewhere only a pid no
    process holds. An owner that was not recorded, or cannot be checked, is not gone."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if owner.get("boot_id") is not None and owner.get("start_ticks") is not None:
        boot = _boot_id()
        if boot is not None and boot != owner["boot_id"]:
            return True
        stat = _proc_stat(pid)
        if boot is not None and stat is not None:
            state, start_ticks = stat
            return state in ("Z", "X") or start_ticks != owner["start_ticks"]
    return not _pid_exists(pid)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a Linux process; None where /proc does not show it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields 3 (state) onwards; the name may hold spaces
    return fields[0], int(fields[19])  # field 22: starttime


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _pid_exists(pid: int) -> bool:
    """Whether some process holds `pid`; True where that cannot be asked (signal 0 is POSIX only)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
