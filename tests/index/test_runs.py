"""Ingest runs and their owning process: a run whose process was killed is marked "interrupted" when the next
ingest starts; a live owner, a reused pid's new process and an owner that cannot be checked are told apart."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from index import Store
from index.models import IngestRun
from index.owners import owner_gone, run_owner

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINUX = Path("/proc/self/stat").is_file() and Path("/proc/sys/kernel/random/boot_id").is_file()

START_AND_WAIT = textwrap.dedent(
    """
    import sys, time
    from index import Store

    store = Store.open(sys.argv[1], database_url=sys.argv[2] or None)
    print(store.start_run("default"), flush=True)
    time.sleep(600)
    """
)


@pytest.fixture()
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", database_url=database_url)
    yield opened
    opened.close()


def killed_run(store: Store, database_url: str | None) -> int:
    """The id of an ingest run started by another process, which is then killed with SIGKILL (and reaped)."""
    args = [sys.executable, "-c", START_AND_WAIT, str(store.root), database_url or ""]
    with subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True) as child:
        try:
            run_id = int(child.stdout.readline())
        finally:
            child.kill()
            child.wait()
    return run_id


def status(store: Store, run_id: int) -> str:
    with store.session() as session:
        return session.scalar(select(IngestRun.status).where(IngestRun.id == run_id))


def test_run_of_a_killed_process_is_interrupted_when_the_next_ingest_starts(
    store: Store, database_url: str | None
) -> None:
    killed = killed_run(store, database_url)
    assert status(store, killed) == "running"  # nothing ran on the way down

    own = store.start_run("default")

    assert status(store, killed) == "interrupted"
    assert status(store, own) == "running"


def test_run_of_a_live_process_stays_running(store: Store) -> None:
    first = store.start_run("default")
    second = store.start_run("default")
    assert (status(store, first), status(store, second)) == ("running", "running")
    assert store.interrupt_stale_runs() == []


def test_finishing_keeps_the_owner_beside_the_summary(store: Store) -> None:
    run_id = store.start_run("default")
    store.finish_run(run_id, "finished", {"documents": 2})
    with store.session() as session:
        summary = session.get(IngestRun, run_id).summary
    assert summary == {"owner": run_owner(), "documents": 2}


def test_run_owner_names_this_process() -> None:
    owner = run_owner()
    assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
    assert not owner_gone(owner)


@pytest.mark.skipif(not LINUX, reason="process start times are read from /proc")
def test_a_reused_pid_is_not_the_owner() -> None:
    owner = run_owner()
    assert owner_gone({**owner, "start_ticks": owner["start_ticks"] - 1})  # same pid, a later process
    assert owner_gone({**owner, "boot_id": "another boot"})


def test_an_owner_that_cannot_be_checked_is_not_gone() -> None:
    owner = run_owner()
    assert not owner_gone(None)
    assert not owner_gone({})
    assert not owner_gone({**owner, "host": f"not-{owner['host']}"})
    assert not owner_gone({**owner, "pid": "1"})
    assert not owner_gone({**owner, "pid": 0})
