"""Evaluation runs in a store's SQL database: one EvalRun per run, one EvalRow per question, committed per batch.

A run is "running" until its files are written ("finished"); Ctrl-C leaves "interrupted", an error "failed".
A run records its owning process; one whose process died without a word (a kill signal) is marked
"interrupted" when runs are listed or it is resumed. Re-opening a run with the same id resumes it: the question
ids already stored are skipped, and every setting that shapes an answer must be what it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from eval.errors import RunError
from index.models import EvalRow, EvalRun, utcnow
from index.owners import owner_gone, run_owner

# Config keys that may differ when a run is resumed: where files are, the batch size, versions, the owner.
# Every other key shapes the run's numbers and must be equal.
MAY_DIFFER = frozenset({"dataset_path", "split_file", "retrieval_store", "batch_size", "versions", "owner"})


@dataclass(frozen=True)
class RunInfo:
    id: str
    created_at: datetime
    finished_at: datetime | None
    status: str
    dataset: str
    dataset_hash: str
    config: Mapping[str, Any]
    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class Flip:
    """A question whose exact match differs between two runs."""

    question_id: str
    question: str
    golds: tuple[str, ...]
    prediction_a: str
    prediction_b: str


@dataclass(frozen=True)
class MetricDelta:
    name: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass(frozen=True)
class Comparison:
    a: RunInfo
    b: RunInfo
    deltas: tuple[MetricDelta, ...]
    gained: tuple[Flip, ...]  # EM 0 -> 1
    lost: tuple[Flip, ...]  # EM 1 -> 0
    shared: int  # questions answered in both runs


def _info(run: EvalRun) -> RunInfo:
    return RunInfo(
        id=run.id,
        created_at=run.created_at,
        finished_at=run.finished_at,
        status=run.status,
        dataset=run.dataset,
        dataset_hash=run.dataset_hash,
        config=dict(run.config or {}),
        metrics=dict(run.metrics or {}),
    )


def start_run(engine: Engine, run_id: str, dataset: str, dataset_hash: str, config: Mapping[str, Any]) -> set[str]:
    """Create the run, or resume it; returns the question ids it already holds. The run records this process as
    its owner (``config["owner"]``)."""
    owned = {**config, "owner": run_owner()}
    with Session(engine) as session:
        run = session.get(EvalRun, run_id, with_for_update=True)
        if run is None:
            session.add(EvalRun(id=run_id, dataset=dataset, dataset_hash=dataset_hash, config=owned))
            session.commit()
            return set()
        if _stale(run):
            run.status = "interrupted"
            session.commit()
        _check_resumable(run, dataset_hash, config)
        run.status, run.finished_at, run.config = "running", None, owned
        done = set(session.scalars(select(EvalRow.question_id).where(EvalRow.run_id == run_id)))
        session.commit()
        return done


def _stale(run: EvalRun) -> bool:
    """A run still "running" whose owning process is gone."""
    return run.status == "running" and owner_gone((run.config or {}).get("owner"))


def interrupt_stale_runs(engine: Engine) -> list[str]:
    """Mark "interrupted" the runs left "running" by a process that is gone; returns their ids."""
    with Session(engine) as session:
        running = session.scalars(select(EvalRun).where(EvalRun.status == "running").with_for_update())
        stale = [run for run in running if _stale(run)]
        for run in stale:
            run.status = "interrupted"
        session.commit()
        return [run.id for run in stale]


def _check_resumable(run: EvalRun, dataset_hash: str, config: Mapping[str, Any]) -> None:
    if run.dataset_hash != dataset_hash:
        raise RunError(
            f"run {run.id!r} was made on another dataset (sha256 {run.dataset_hash[:12]}, now {dataset_hash[:12]}); "
            "choose another --run-id"
        )
    old, new = _flat(run.config or {}), _flat(json.loads(json.dumps(config)))  # compared as stored: JSON
    keys = [key for key in {**new, **old} if key.split(".")[0] not in MAY_DIFFER]
    differ = [key for key in keys if old.get(key) != new.get(key)]
    if differ:
        shown = ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in differ)
        raise RunError(f"run {run.id!r} cannot be resumed with other settings ({shown}); choose another --run-id")


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings under dotted keys (``reader.model``), so a difference names the setting itself."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def save_rows(engine: Engine, run_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Store one batch of result rows in one transaction (each row has id, exact, f1)."""
    with Session(engine) as session:
        session.add_all(
            EvalRow(
                run_id=run_id,
                question_id=str(row["id"]),
                exact=float(row.get("exact") or 0.0),
                f1=float(row.get("f1") or 0.0),
                row=dict(row),
            )
            for row in rows
        )
        session.commit()


def load_rows(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's result rows, ordered by question id."""
    with Session(engine) as session:
        rows = session.scalars(select(EvalRow.row).where(EvalRow.run_id == run_id).order_by(EvalRow.question_id))
        return [dict(row) for row in rows]


def set_status(engine: Engine, run_id: str, status: str, metrics: Mapping[str, Any] | None = None) -> None:
    with Session(engine) as session:
        run = session.get(EvalRun, run_id)
        if run is None:
            raise RunError(f"no evaluation run {run_id!r}")
        run.status = status
        if metrics is not None:
            run.metrics = dict(metrics)
        if status == "finished":
            run.finished_at = utcnow()
        session.commit()


def get_run(engine: Engine, run_id: str) -> RunInfo:
    with Session(engine) as session:
        run = session.get(EvalRun, run_id)
        if run is None:
            known = list(session.scalars(select(EvalRun.id).order_by(EvalRun.created_at.desc()).limit(5)))
            raise RunError(f"no evaluation run {run_id!r}; recent runs: {known}")
        return _info(run)


def list_runs(engine: Engine) -> list[RunInfo]:
    """All runs, oldest first; those left "running" by a process that is gone are marked "interrupted" first."""
    interrupt_stale_runs(engine)
    with Session(engine) as session:
        return [_info(run) for run in session.scalars(select(EvalRun).order_by(EvalRun.created_at, EvalRun.id))]


def compare_runs(engine: Engine, run_a: str, run_b: str) -> Comparison:
    """Metric deltas (b - a) and the questions whose exact match flipped between two runs."""
    a, b = get_run(engine, run_a), get_run(engine, run_b)
    rows_a = {row["id"]: row for row in load_rows(engine, run_a) if row.get("prediction") is not None}
    rows_b = {row["id"]: row for row in load_rows(engine, run_b) if row.get("prediction") is not None}
    shared = sorted(rows_a.keys() & rows_b.keys())
    gained, lost = [], []
    for qid in shared:
        ra, rb = rows_a[qid], rows_b[qid]
        if ra["exact"] == rb["exact"]:
            continue
        flip = Flip(qid, ra["question"], tuple(ra["golds"]), ra["prediction"], rb["prediction"])
        (gained if rb["exact"] > ra["exact"] else lost).append(flip)
    return Comparison(a, b, _deltas(a.metrics, b.metrics), tuple(gained), tuple(lost), len(shared))


def _deltas(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[MetricDelta, ...]:
    def numeric(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return tuple(MetricDelta(key, float(a[key]), float(b[key])) for key in a if numeric(a[key]) and numeric(b.get(key)))
