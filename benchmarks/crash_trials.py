"""Crash trials: SIGKILL `rag ingest` and `rag delete` at random moments, run the next command a user would, and
count what the crash left behind.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/crash_trials.py [--trials 20] [--work DIR] [--json PATH]
        [--jobs 2] [--window-every 3] [--sample 20] [--seed 7] [--ops ingest,reingest,delete] [--keep]

Three operations, at least --trials trials each; every step is the real `rag` command in a subprocess:
  ingest    40 small .txt/.md files into a fresh store (half the trials) or into a store already holding 10 other
            documents; killed, then the same `rag ingest` again
  reingest  the 40 files ingested, then 10 of them rewritten (new text, other lengths); the `rag ingest` that
            replaces them is killed, then run again; every rewritten document must hold its new text and vectors
  delete    `rag delete SOURCE` on the ingested store, killed, then `rag delete SOURCE` again: it must delete the
            document or say it is already gone. In half the trials `rag check` runs first, right after the kill, with
            no write in between; how often it finds the store inconsistent is informational (the design heals on
            the next write or at `rag serve` start-up, not on a read)
Kill moments: most trials draw one (stratified, uniform) from 0 .. the operation's usual duration, measured first
with the same number of parallel jobs. Every --window-every'th trial instead polls the collection's SQL generation
and kills 0-20 ms after it rises (the write has committed): a store this small spends only milliseconds between
its SQL commit and its vector file save, so random moments almost never land there.
After the next command (no repair in between): temp files left in the store or its vectors folder, vector files
the manifest does not name, `rag check --sample N` (every chunk for reingest), and direct SQL on store.db: lost,
duplicated and stale documents, chunks without a document, documents without chunks, keyword rows without a chunk
and chunks without keyword rows. Missing, orphan and wrong vectors are read from `rag check`'s line.
A trial is clean when all of these are zero and both commands answered as they should; the target is every trial
clean. Exits 1 when any trial is not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any

from store_integrity import ENV, Proc, rag_command, run  # the house runner: one environment, one way to read output

DOCS, CHANGED, BASE_DOCS = 40, 10, 10
WINDOW_DELAY_S = 0.02  # window trials kill up to this long after the SQL commit was seen (a save takes ~10-30 ms)
POLL_S = 0.002
WORDS = "harbour lantern copper orchard valley ferry glacier meadow quarry beacon granary mill bridge tower".split()
COUNTS = (
    "lost",
    "duplicated",
    "bad_rows",
    "orphan_vectors",
    "missing_vectors",
    "wrong_vectors",
    "stale",
    "temp_files",
    "unnamed_files",
)
CHECK_COUNTS = {
    "missing_vectors": re.compile(r"(\d+) chunks have no vectors"),
    "orphan_vectors": re.compile(r"(\d+) vector ids have no chunk"),
    "wrong_vectors": re.compile(r"(\d+) of \d+ sampled chunks have vectors of other text"),
}
VARIANTS = {
    "ingest": ("fresh store", "existing store"),
    "reingest": (f"{CHANGED} of {DOCS} changed",),
    "delete": ("check first", "delete again"),
}


# ---- documents ------------------------------------------------------------------------------------------


def doc_name(i: int) -> str:
    return f"doc-{i:02d}{'.md' if i % 2 else '.txt'}"


def doc_text(i: int, sentences: int, tag: str = "") -> str:
    """Distinct sentences; every fifth document runs to several chunks. `tag` marks a rewritten version."""
    rng = random.Random(f"{i}/{tag}")
    head = f"Document {i}" + (f" revision {tag}" if tag else "")
    body = " ".join(
        f"{head} sentence {j}: the {rng.choice(WORDS)} near the {rng.choice(WORDS)} was rebuilt in "
        f"{1800 + rng.randrange(200)} by crew {rng.randrange(99)}."
        for j in range(sentences)
    )
    return (f"# Note {i}\n\n" if i % 2 else "") + body + "\n"


class Slot:
    """One worker's own folder of documents and the template store ingested from it.

    Sources are file paths, so a reingest trial rewrites this folder's files (and puts them back afterwards); a
    slot serves one trial at a time.
    """

    def __init__(self, root: Path) -> None:
        self.root, self.docs, self.template = root, root / "docs", root / "template"
        self.docs.mkdir(parents=True, exist_ok=True)
        self.originals = {doc_name(i): doc_text(i, 15 if i % 5 == 0 else 4) for i in range(DOCS)}
        self.restore()

    def restore(self) -> None:
        for name, text in self.originals.items():
            path = self.docs / name
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")

    def sources(self) -> set[str]:
        return {str(self.docs / name) for name in self.originals}


# ---- reading a store without writing to it --------------------------------------------------------------


def _connect(store: Path) -> sqlite3.Connection:
    db = store / "store.db"
    if not db.exists():
        raise sqlite3.OperationalError(f"{db} does not exist")
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)


def sql_generation(store: Path) -> int | None:
    """The highest collection generation committed in SQL; None while there is no database or table yet."""
    try:
        with closing(_connect(store)) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(generation), 0) FROM collections").fetchone()[0])
    except sqlite3.Error:
        return None


class GenerationPoller:
    """Reads the SQL generation over one read-only connection, opened once the database and its tables exist."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.conn: sqlite3.Connection | None = None

    def __call__(self) -> int | None:
        try:
            if self.conn is None:
                self.conn = _connect(self.store)
            rows = self.conn.execute("SELECT COALESCE(MAX(generation), 0) FROM collections").fetchall()
        except sqlite3.Error:
            self.close()
            return None
        return int(rows[0][0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def manifest_files(store: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((store / "manifest.json").read_text(encoding="utf-8")).get("vector_files", {})
    except (OSError, ValueError):
        return {}


def temp_files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*.tmp")) if store.exists() else []


def unnamed_files(store: Path) -> list[str]:
    """Vector files the manifest does not name (superseded saves a writer should have removed)."""
    named = {record.get("file") for record in manifest_files(store).values()}
    folder = store / "vectors"
    found = folder.glob("collection-*.faiss") if folder.exists() else []
    return sorted(f"vectors/{p.name}" for p in found if p.name not in named)


def phase_at_kill(store: Path, baseline: int, killed: bool) -> str:
    if not killed:
        return "finished first"
    sql = sql_generation(store) or 0
    if sql <= baseline:
        return "before the commit"
    saved = manifest_files(store).get("default", {}).get("generation")
    if saved is None or saved < sql:
        half_written = any(name.startswith("vectors/") for name in temp_files(store))
        return "SQL ahead, file half-written" if half_written else "SQL ahead of vectors"
    return "after the save"


@dataclass
class Rows:
    """What store.db holds, read directly."""

    sources: Counter[str]
    texts: dict[str, str]
    chunks_without_document: int
    documents_without_chunks: int
    keyword_without_chunk: int
    chunks_without_keyword: int
    running_ingests: int  # ingest runs never marked finished (informational: a killed run stays "running")

    @property
    def bad_rows(self) -> int:
        return (
            self.chunks_without_document
            + self.documents_without_chunks
            + self.keyword_without_chunk
            + self.chunks_without_keyword
        )


def read_rows(store: Path) -> Rows:
    with closing(_connect(store)) as conn:

        def count(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        docs = conn.execute("SELECT source, text FROM documents").fetchall()
        return Rows(
            sources=Counter(source for source, _ in docs),
            texts={source: text for source, text in docs},
            chunks_without_document=count(
                "SELECT COUNT(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
            ),
            documents_without_chunks=count(
                "SELECT COUNT(*) FROM documents WHERE id NOT IN (SELECT document_id FROM chunks)"
            ),
            keyword_without_chunk=count("SELECT COUNT(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)"),
            chunks_without_keyword=count("SELECT COUNT(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)"),
            running_ingests=count("SELECT COUNT(*) FROM ingest_runs WHERE status = 'running'"),
        )


# ---- a command killed on purpose ------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    op: str
    variant: str
    index: int  # within its (op, variant) group
    mode: str  # "random": kill at at_s; "window": kill delay_s after the SQL generation rises
    at_s: float = 0.0
    delay_s: float = 0.0


@dataclass
class Killed:
    proc: Proc
    at_s: float | None  # when SIGKILL was sent; None when the command finished first
    commit_seen_s: float | None  # window trials: when the SQL generation was seen to rise
    killed: bool


def run_killed(args: Sequence[str], store: Path, plan: Plan, baseline: int, usual_s: float) -> Killed:
    """Start the command in its own process group and SIGKILL the group at the planned moment."""
    started = time.perf_counter()
    deadline = plan.at_s if plan.mode == "random" else 3 * usual_s + 30  # a window trial that never sees a commit
    seen = at = None
    poll = GenerationPoller(store)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, closing(poll):
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, env=ENV, start_new_session=True)
        while proc.poll() is None:
            elapsed = time.perf_counter() - started
            if plan.mode == "window" and seen is None and (poll() or 0) > baseline:
                seen, deadline = elapsed, elapsed + plan.delay_s
            if elapsed >= deadline:
                at = elapsed
                os.killpg(proc.pid, signal.SIGKILL)  # the group this call created: the command and any children
                proc.wait()
                break
            time.sleep(POLL_S if plan.mode == "window" else min(0.01, max(deadline - elapsed, 0.0)))
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    killed = proc.returncode == -signal.SIGKILL
    return Killed(Proc(list(args), proc.returncode, stdout, stderr, seconds, 0.0), at, seen, killed)


# ---- one trial ------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    store: Path
    command: list[str]  # killed, then run again as the next command
    expected: set[str]  # sources that must be stored afterwards
    gone: set[str] = field(default_factory=set)  # sources that must not be
    revised: dict[str, str] = field(default_factory=dict)  # source -> marker its stored text must hold
    sample: int = 20


@dataclass
class Trial:
    op: str
    variant: str
    index: int
    mode: str
    usual_s: float
    kill_planned_s: float | None = None
    commit_seen_s: float | None = None
    killed_at_s: float | None = None
    killed: bool = False
    phase: str = ""
    killed_command: str = ""
    killed_output: str = ""
    check_before: str | None = None
    inconsistent_before: bool | None = None
    next_command: str = ""
    next_exit: int | None = None
    next_output: str = ""
    next_ok: bool = False
    next_seconds: float = 0.0
    check_exit: int | None = None
    check_line: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    running_ingests: int = 0
    problems: list[str] = field(default_factory=list)
    store: str = ""
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems


class Bench:
    def __init__(self, work: Path, jobs: int, sample: int, seed: int) -> None:
        self.work, self.jobs, self.sample, self.seed = work, jobs, sample, seed
        self.rag = rag_command()
        self.base_docs, self.base_store = work / "base-docs", work / "base-store"
        self.slots: Queue[Slot] = Queue()
        self.usual: dict[str, float] = {}
        self.print_lock = threading.Lock()

    def cli(self, *args: str | Path, timeout_s: float = 300.0) -> Proc:
        return run([*self.rag, *map(str, args)], timeout_s)

    def say(self, text: str) -> None:
        with self.print_lock:
            print(text.replace(str(self.work), "$WORK"), flush=True)

    def with_slot(self, job: Callable[[Slot], Any]) -> Any:
        slot = self.slots.get()
        try:
            return job(slot)
        finally:
            slot.restore()
            self.slots.put(slot)

    def trial_store(self, plan: Plan) -> Path:
        slug = re.sub(r"\W+", "-", plan.variant)
        return self.work / "trials" / f"{plan.op}-{slug}-{plan.mode}-{plan.index:02d}"

    # -- scenarios: a store in the state the operation starts from, and the command --

    def scenario(self, slot: Slot, plan: Plan) -> Scenario:
        store = self.trial_store(plan)
        shutil.rmtree(store, ignore_errors=True)
        store.parent.mkdir(parents=True, exist_ok=True)
        ingest = [*self.rag, "ingest", str(slot.docs), "--store", str(store)]
        if plan.variant == "fresh store":
            return Scenario(store, ingest, slot.sources(), sample=self.sample)
        if plan.variant == "existing store":
            shutil.copytree(self.base_store, store)
            base = {str(self.base_docs / p.name) for p in self.base_docs.iterdir()}
            return Scenario(store, ingest, slot.sources() | base, sample=self.sample)
        shutil.copytree(slot.template, store)
        rng = random.Random(f"{self.seed}/{plan.op}/{plan.variant}/{plan.mode}/{plan.index}")
        if plan.op == "reingest":
            tag = f"t{plan.index:02d}{plan.mode[0]}"
            revised = {}
            for i in rng.sample(range(DOCS), CHANGED):
                path = slot.docs / doc_name(i)
                path.write_text(doc_text(i, rng.choice((2, 8, 20)), tag), encoding="utf-8")
                revised[str(path)] = f"revision {tag}"
            return Scenario(store, ingest, slot.sources(), revised=revised, sample=1000)  # every chunk is sampled
        target = str(slot.docs / doc_name(rng.randrange(DOCS)))
        delete = [*self.rag, "delete", target, "--store", str(store)]
        return Scenario(store, delete, slot.sources() - {target}, gone={target}, sample=self.sample)

    # -- set-up and calibration --

    def set_up(self) -> None:
        """Documents, one template store per slot and the base store of the "existing store" trials."""
        self.base_docs.mkdir(parents=True)
        for i in range(BASE_DOCS):
            (self.base_docs / f"base-{i:02d}.txt").write_text(doc_text(100 + i, 4), encoding="utf-8")
        slots = [Slot(self.work / f"slot-{k}") for k in range(self.jobs)]
        builds = [[*self.rag, "ingest", str(s.docs), "--store", str(s.template)] for s in slots]
        builds.append([*self.rag, "ingest", str(self.base_docs), "--store", str(self.base_store)])
        with ThreadPoolExecutor(len(builds)) as pool:
            procs = list(pool.map(run, builds))
        for proc in procs:
            if proc.code != 0:
                raise RuntimeError(f"set-up {command_line(proc.args)} failed: {proc.brief()}")
        for slot in slots:
            self.slots.put(slot)

    def calibrate(self, kinds: Sequence[tuple[str, str]]) -> None:
        """Each operation's usual duration: the median of `jobs` full runs made side by side, as the trials run."""
        for op, variant in kinds:
            plans = [Plan(op, variant, 90 + k, "calibration") for k in range(self.jobs)]
            with ThreadPoolExecutor(self.jobs) as pool:
                procs = list(pool.map(lambda p: self.with_slot(lambda s: run(self.scenario(s, p).command)), plans))
            for proc in procs:
                if proc.code != 0:
                    raise RuntimeError(f"calibration of {op} ({variant}) failed: {proc.brief()}")
            self.usual[usual_key(op, variant)] = statistics.median(p.seconds for p in procs)
            shown = ", ".join(f"{p.seconds:.1f}" for p in procs)
            self.say(f"usual duration of {op} ({variant}): {self.usual[usual_key(op, variant)]:.1f} s ({shown})")

    # -- the trial itself --

    def trial(self, plan: Plan) -> Trial:
        return self.with_slot(lambda slot: self._trial(slot, plan))

    def _trial(self, slot: Slot, plan: Plan) -> Trial:
        started = time.perf_counter()
        usual = self.usual[usual_key(plan.op, plan.variant)]
        trial = Trial(plan.op, plan.variant, plan.index, plan.mode, round(usual, 2))
        try:
            scenario = self.scenario(slot, plan)
            trial.store = str(scenario.store)
            self._crash(trial, scenario, plan, usual)
            self._next(trial, scenario, plan)
        except Exception as exc:  # noqa: BLE001 - one trial's failure is reported; the others still run
            trial.problems.append(f"the benchmark failed: {type(exc).__name__}: {exc}")
        trial.seconds = round(time.perf_counter() - started, 1)
        self.say(trial_line(trial))
        return trial

    def _crash(self, trial: Trial, scenario: Scenario, plan: Plan, usual: float) -> None:
        baseline = sql_generation(scenario.store) or 0
        killed = run_killed(scenario.command, scenario.store, plan, baseline, usual)
        trial.phase = phase_at_kill(scenario.store, baseline, killed.killed)
        trial.killed, trial.killed_at_s = killed.killed, rounded(killed.at_s)
        trial.kill_planned_s = rounded(plan.at_s) if plan.mode == "random" else None
        trial.commit_seen_s = rounded(killed.commit_seen_s)
        trial.killed_command = command_line(scenario.command)
        trial.killed_output = f"exit {killed.proc.code} after {killed.proc.seconds:.2f} s: {tail(killed.proc)}"
        if killed.proc.crashed:
            trial.problems.append(f"the killed command crashed before the kill: {killed.proc.brief()}")

    def _next(self, trial: Trial, scenario: Scenario, plan: Plan) -> None:
        store = scenario.store
        if plan.variant == "check first":
            before = self.cli("check", "--store", store, "--sample", self.sample)
            trial.check_before = before.brief()
            trial.inconsistent_before = before.code != 0
        proc = run(scenario.command)
        trial.next_command, trial.next_seconds = command_line(scenario.command), round(proc.seconds, 2)
        trial.next_exit, trial.next_output = proc.code, f"exit {proc.code}: {tail(proc)}"
        trial.next_ok = answered(plan.op, proc)
        trial.leftovers = temp_files(store) + unnamed_files(store)
        check = self.cli("check", "--store", store, "--sample", scenario.sample)
        trial.check_exit, trial.check_line = check.code, check.line
        judge(trial, scenario, check)
        if not trial.next_ok:
            trial.problems.append(f"the next command did not finish the job: {proc.brief()}")
        if check.code != 0:
            trial.problems.append(f"rag check after the next command: {check.brief()}")


def usual_key(op: str, variant: str) -> str:
    return op if op == "delete" else f"{op}/{variant}"


def answered(op: str, proc: Proc) -> bool:
    """The next command did its job: ingest ran clean; delete deleted the document or said it is gone."""
    if op == "delete":
        said_gone = "no document with source" in proc.err  # exit 0 or 1: the product's choice, both fine here
        return (proc.code == 0 and proc.out.startswith("deleted ")) or (proc.code in (0, 1) and said_gone)
    return proc.code == 0 and re.search(r"\berrors 0\b", proc.out) is not None and not proc.crashed


def judge(trial: Trial, scenario: Scenario, check: Proc) -> None:
    """Count what is wrong after the next command, from SQL, the check's line and the store's files."""
    counts = dict.fromkeys(COUNTS, 0)
    try:
        rows = read_rows(scenario.store)
    except sqlite3.Error as exc:
        trial.problems.append(f"store.db unreadable: {exc}")
        rows = Rows(Counter(), {}, 0, 0, 0, 0, 0)
    counts["lost"] = len(scenario.expected - set(rows.sources))
    counts["duplicated"] = sum(n - 1 for n in rows.sources.values())
    counts["bad_rows"] = rows.bad_rows
    stale = [s for s, marker in scenario.revised.items() if marker not in rows.texts.get(s, marker)]
    stale += [s for s in scenario.gone if s in rows.sources]
    counts["stale"] = len(stale)
    for name, pattern in CHECK_COUNTS.items():
        counts[name] = sum(int(n) for n in pattern.findall(check.out))
    counts["temp_files"] = sum(name.endswith(".tmp") for name in trial.leftovers)
    counts["unnamed_files"] = len(trial.leftovers) - counts["temp_files"]
    trial.counts, trial.running_ingests = counts, rows.running_ingests
    details = {
        "lost": sorted(scenario.expected - set(rows.sources)),
        "duplicated": sorted(s for s, n in rows.sources.items() if n > 1),
        "stale": sorted(stale),
        "temp_files": [name for name in trial.leftovers if name.endswith(".tmp")],
        "unnamed_files": [name for name in trial.leftovers if not name.endswith(".tmp")],
    }
    for name, value in counts.items():
        if value:
            shown = [Path(s).name for s in details.get(name, [])][:5]
            trial.problems.append(f"{value} {name.replace('_', ' ')}" + (f": {', '.join(shown)}" if shown else ""))
    if rows.bad_rows:
        trial.problems.append(
            f"rows: {rows.chunks_without_document} chunks without document, {rows.documents_without_chunks} documents"
            f" without chunks, {rows.keyword_without_chunk} keyword rows without chunk, "
            f"{rows.chunks_without_keyword} chunks without keyword row"
        )


# ---- plans, output ----------------------------------------------------------------------------------------


def make_plans(ops: Sequence[str], trials: int, window_every: int, usual: dict[str, float], seed: int) -> list[Plan]:
    """Per (operation, variant): stratified random kill moments over 0 .. usual, every n-th trial a window trial."""
    rng = random.Random(seed)
    plans = []
    for op in ops:
        variants = VARIANTS[op]
        per_variant = math.ceil(trials / len(variants))
        for variant in variants:
            modes = [
                "window" if window_every and i % window_every == window_every - 1 else "random"
                for i in range(per_variant)
            ]
            randoms = modes.count("random")
            moments = [(k + rng.random()) / randoms * usual[usual_key(op, variant)] for k in range(randoms)]
            rng.shuffle(moments)
            for i, mode in enumerate(modes):
                at = moments.pop() if mode == "random" else 0.0
                plans.append(Plan(op, variant, i, mode, at, rng.uniform(0.0, WINDOW_DELAY_S)))
    return plans


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def command_line(args: Sequence[str]) -> str:
    return "rag " + " ".join(args[1:])


def tail(proc: Proc, lines: int = 4) -> str:
    """The last lines a person would read, progress bars dropped."""
    text = [line.strip() for line in (proc.out + "\n" + proc.err).replace("\r", "\n").splitlines()]
    kept = [line for line in text if line and "%|" not in line]
    return " | ".join(kept[-lines:])[-600:] or "(no output)"


def trial_line(t: Trial) -> str:
    when = f"at {t.killed_at_s:.2f} s" if t.killed_at_s is not None else "not killed"
    seen = f", commit seen {t.commit_seen_s:.2f} s" if t.commit_seen_s is not None else ""
    before = f"; check before {'inconsistent' if t.inconsistent_before else 'consistent'}" if t.check_before else ""
    verdict = "clean" if t.clean else "NOT CLEAN: " + "; ".join(t.problems)
    return (
        f"{t.op:<8} {t.variant:<15} {t.mode:<6} #{t.index:02d} kill {when} (usual {t.usual_s:.1f} s{seen}), "
        f"{t.phase}{before}; next exit {t.next_exit}, check {t.check_exit}; {t.seconds:.0f} s: "
        f"{verdict}"
    )


HEADERS = ("trials", "killed", "SQL>vec", "lost", "dup", "rows", "orph v", "miss v", "wrong v", "stale")
HEADERS += ("next bad", "check bad", "tmp", "old files", "clean")


def table_row(name: str, trials: Sequence[Trial]) -> str:
    def total(key: str) -> int:
        return sum(t.counts.get(key, 0) for t in trials)

    cells = (
        len(trials),
        sum(t.killed for t in trials),
        sum(t.phase.startswith("SQL ahead") for t in trials),
        *(total(key) for key in COUNTS[:7]),
        sum(not t.next_ok for t in trials),
        sum(t.check_exit != 0 for t in trials),
        total("temp_files"),
        total("unnamed_files"),
        sum(t.clean for t in trials),
    )
    return f"  {name:<18}" + "".join(f"{cell:>{len(h) + 2}}" for cell, h in zip(cells, HEADERS, strict=True))


def print_tables(ops: Sequence[str], trials: Sequence[Trial]) -> None:
    for op in ops:
        mine = [t for t in trials if t.op == op]
        print(f"\n{op}\n  {'':<18}" + "".join(f"{h:>{len(h) + 2}}" for h in HEADERS))
        for variant in VARIANTS[op]:
            print(table_row(variant, [t for t in mine if t.variant == variant]))
        if len(VARIANTS[op]) > 1:
            print(table_row("all", mine))
        for mode in ("random", "window"):
            phases = Counter(t.phase for t in mine if t.mode == mode)
            if phases:
                shown = ", ".join(f"{phase} {n}" for phase, n in sorted(phases.items()))
                print(f"  {mode} kills ({sum(phases.values())}): {shown}")
        checked = [t for t in mine if t.inconsistent_before is not None]
        if checked:
            ahead = [t for t in checked if t.phase.startswith("SQL ahead")]
            print(
                f"  rag check right after the kill, before any write: {sum(t.inconsistent_before for t in checked)} "
                f"of {len(checked)} inconsistent ({sum(bool(t.inconsistent_before) for t in ahead)} of the "
                f"{len(ahead)} killed with SQL ahead of vectors)"
            )
        stuck = sum(t.running_ingests > 0 for t in mine)
        if stuck:
            print(f"  informational: {stuck} stores keep an ingest run marked 'running' (the killed one)")


def print_unclean(trials: Sequence[Trial], work: Path) -> None:
    bad = [t for t in trials if not t.clean]
    print(f"\n{len(bad)} trials not clean" + (":" if bad else ""))
    for t in bad:
        lines = [
            f"- {t.op} / {t.variant} / {t.mode} #{t.index:02d}, store {t.store}",
            f"    killed: {t.killed_command}",
            f"      planned {t.kill_planned_s} s, commit seen {t.commit_seen_s} s, SIGKILL at {t.killed_at_s} s "
            f"(usual {t.usual_s} s); phase {t.phase}",
            f"      {t.killed_output}",
        ]
        if t.check_before:
            lines.append(f"    rag check right after the kill: {t.check_before}")
        lines += [
            f"    next:   {t.next_command} ({t.next_seconds} s)",
            f"      {t.next_output}",
            f"    rag check: exit {t.check_exit}: {t.check_line}",
            f"    leftovers: {t.leftovers or 'none'}",
            *(f"    problem: {p}" for p in t.problems),
        ]
        print("\n".join(line.replace(str(work), "$WORK") for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per operation [20]")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a new temp folder]")
    parser.add_argument("--json", type=Path, default=None, help="also write every trial here")
    parser.add_argument("--jobs", type=int, default=2, help="trials run side by side [2]")
    parser.add_argument("--window-every", type=int, default=3, help="every n-th trial aims at the write window [3]")
    parser.add_argument("--sample", type=int, default=20, help="rag check --sample (reingest checks every chunk)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ops", default="ingest,reingest,delete", help="operations, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (stores) afterwards")
    args = parser.parse_args()
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    if unknown := [op for op in ops if op not in VARIANTS]:
        parser.error(f"unknown operation {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    if args.trials < 1 or args.jobs < 1 or args.window_every < 0:
        parser.error("--trials and --jobs must be at least 1, --window-every at least 0")
    work = (args.work or Path(tempfile.mkdtemp(prefix="rag-crash-"))).resolve()
    if args.work and work.exists() and any(work.iterdir()):
        parser.error(f"--work {work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        bench = Bench(work, args.jobs, args.sample, args.seed)
        bench.set_up()
        bench.calibrate(list({usual_key(op, v): (op, v) for op in ops for v in VARIANTS[op]}.values()))
        plans = make_plans(ops, args.trials, args.window_every, bench.usual, args.seed)
        bench.say(f"{len(plans)} trials, {args.jobs} at a time")
        with ThreadPoolExecutor(args.jobs) as pool:
            trials = list(pool.map(bench.trial, plans))
        print_tables(ops, trials)
        print_unclean(trials, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started
    clean = sum(t.clean for t in trials)
    kept = f"; scratch kept in {work}" if args.keep else ""
    print(f"\nsummary: {len(trials)} trials, {clean} clean, {len(trials) - clean} not clean; {total:.0f} s{kept}")
    if args.json:
        payload = {
            "seconds": round(total, 1),
            "usual_seconds": bench.usual,
            "trials": [asdict(t) | {"clean": t.clean} for t in trials],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if clean < len(trials):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
