"""Store integrity benchmark: replays edit, concurrency, tampering and hostile-input sequences against the real
`rag` CLI and a real `rag serve`, and says for each case whether the store ended right.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/store_integrity.py [--work DIR] [--keep] [--json PATH]

Every step runs the real command in a subprocess (`rag ingest`, `rag ask --json`, `rag check`, `rag delete`,
`rag serve` on a free loopback port). This process only builds inputs, tampers with files and measures: it loads
the embedder once to compute dense top-1 over known questions, fresh cosines of stored vectors, and whether each
served `dense_score` equals the cosine of the question with the passage's own text.

Verdicts, one per case:
  correct  the store ended right and the answers cite the right text
  refused  a clear one-line `error:` and a nonzero exit; nothing wrong was served
  WRONG    a wrong answer or vector was served, or `rag check` said consistent on a wrong store
  ERROR    the step crashed (a traceback, not a one-line error) or the benchmark itself could not run the case
Case 3d writes wrong vectors under a matching checksum, as a buggy writer would: nothing can tell at load time, so
its wrong answers before `rag check` are expected; it passes when `rag check` catches it and `--repair` fixes it.
Exits 1 when any case is WRONG or ERROR.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SAMPLE_MIN_COSINE = 0.95  # a stored vector of the chunk's own text scores about 1.0 against a fresh embedding
SCORE_TOLERANCE = 0.03  # served dense_score versus a fresh cosine (bf16 embeddings, other batch shapes)

# One fact per line: file stem | text | question | words the answer must hold. Distinct topics, so dense top-1
# is unambiguous; the last two have no question.
FACTS_TABLE = """
lighthouse | Marta Olsen kept the Skarvik lighthouse for thirty-one years and painted its tower red in 1911. | \
Who painted the Skarvik lighthouse tower red? | marta olsen
observatory | The Hallen observatory's main telescope has a mirror 2.4 metres across, ground in Jena. | \
How wide is the mirror of the Hallen observatory telescope? | 2.4
bakery | Bakers in the village of Tornby fold cardamom into their Easter bread. | \
What spice do the bakers of Tornby put in their Easter bread? | cardamom
river | The river Velna freezes solid every January, and a horse-drawn sleigh race is held on its ice. | \
What race is held on the frozen river Velna? | sleigh
bridge | Engineer Paulo Reis designed the Corvo suspension bridge, which opened to traffic in 1968. | \
Who designed the Corvo suspension bridge? | paulo reis
library | The municipal library of Essendal lends sewing machines as well as books. | \
What does the Essendal library lend besides books? | sewing machines
mine | Copper mined at Gruva Hill was shipped to Antwerp by barge until the mine closed in 1889. | \
When did the Gruva Hill copper mine close? | 1889
quartet | The Lindqvist string quartet rehearses every Thursday in the old fire station. | \
Where does the Lindqvist string quartet rehearse? | fire station
saffron | Saffron crocus fields on the Marrow plateau are harvested by hand at dawn in late October. | \
When is the saffron on the Marrow plateau harvested? | october
railway | The coastal railway between Hamnvik and Oster was electrified in 1953. | \
When was the railway between Hamnvik and Oster electrified? | 1953
glass | Glassblowers in Murnau use fine white sand dug from the northern dunes. | |
chess | The city chess club meets in the back room of the Blue Anchor cafe. | |
"""
FACTS = tuple(tuple(part.strip() for part in line.split("|")) for line in FACTS_TABLE.strip().splitlines())
KNOWN = [(stem, question, key) for stem, _, question, key in FACTS if question]


# ---- processes ------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """One finished subprocess: exit code, output, wall time and its own peak RSS (from wait4)."""

    args: list[str]
    code: int
    out: str
    err: str
    seconds: float
    peak_mb: float

    @property
    def line(self) -> str:
        """The line a person reads first: the exception of a crash, the `error:` line, else the first output."""
        if self.crashed:
            return "crashed: " + self.err.strip().splitlines()[-1]
        errors = [line for line in self.err.splitlines() if line.startswith("error:")]
        if errors:
            return errors[0]
        for text in (self.out, self.err):
            for line in text.splitlines():
                if line.strip() and "%|" not in line:  # skip progress bars
                    return line.strip()
        return ""

    @property
    def crashed(self) -> bool:
        """Ended by an uncaught exception (a traceback) rather than a one-line error or a result."""
        return "Traceback (most recent call last)" in self.err

    def brief(self) -> str:
        return f"exit {self.code}: {self.line[:240]}"

    @property
    def skipped(self) -> list[str]:
        """`rag ingest`'s "skipped PATH: reason" lines (a progress bar may share their line)."""
        return [line[line.index("skipped ") :] for line in self.err.splitlines() if "skipped " in line]


def rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def run(args: Sequence[str], timeout_s: float = 300.0) -> Proc:
    """Run to completion with output in temp files; the child's own peak RSS comes from wait4."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, env=ENV)
        code, peak_mb = _reap(proc, timeout_s)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Proc(list(args), code, stdout, stderr, time.perf_counter() - started, peak_mb)


def _reap(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`rag serve` on a free loopback port, ready (models loaded) when the `with` block starts."""

    def __init__(self, rag: list[str], store: Path, log: Path) -> None:
        self.rag, self.store, self.log_path = rag, store, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.log = self.log_path.open("wb")
        args = [*self.rag, "serve", "--store", str(self.store), "--port", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=ENV)
        self.http = httpx.Client(base_url=self.url, timeout=120.0)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"rag serve exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"rag serve not ready after 180 s: {self.log_tail()}")

    def __exit__(self, *_exc: object) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def log_tail(self) -> str:
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])[-400:]

    def ask(self, question: str, k: int = 3) -> tuple[int, dict[str, Any] | str]:
        """(status, strictly parsed JSON) or (status, the raw text when it is not valid JSON)."""
        response = self.http.post("/v1/ask", json={"question": question, "k": k})
        return response.status_code, strict_json(response.text)


def strict_json(text: str) -> dict[str, Any] | str:
    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    try:
        return json.loads(text, parse_constant=reject)
    except ValueError:
        return text


# ---- in-process measurements ----------------------------------------------------------------------------


class Probe:
    """The embedder, loaded once here, for measurements the commands do not print."""

    def __init__(self) -> None:
        from transformers.utils import logging as hf_logging

        from index import SentenceTransformerEmbedder

        hf_logging.disable_progress_bar()
        self.embedder = SentenceTransformerEmbedder()

    def open(self, root: Path):  # noqa: ANN201 - index.Store
        from index import Store

        return Store.open(root, embedder=self.embedder)

    def top1(self, root: Path, questions: Sequence[tuple[str, str, str]]) -> tuple[int | None, str]:
        """(questions whose dense top-1 is their document, note); None when the store refuses to search."""
        from index import StoreError

        try:
            with self.open(root) as store:
                hits = store.dense_search(self.embedder.embed_queries([q for _, q, _ in questions]), 1)
                top = [store.passages(row[:1]) for row in hits]
        except StoreError as exc:
            return None, f"refused ({type(exc).__name__})"
        right = sum(bool(p) and Path(p[0].source).stem == stem for p, (stem, _, _) in zip(top, questions, strict=True))
        return right, f"{right}/{len(questions)}"

    def stored_cosine(self, root: Path, source: str) -> float:
        """Lowest cosine between a document's stored vectors and a fresh embedding of its text."""
        from sqlalchemy import select

        from index import manifest, vector_files
        from index.models import Chunk, Document
        from index.sentences import vector_texts

        with self.open(root) as store, store.session() as session:
            rows = session.execute(
                select(Chunk.id, Chunk.text, Document.title).join(Document).where(Document.source == source)
            ).all()
        record = manifest.read(root).vector_files["default"]
        index = vector_files.read(root / "vectors" / record.file, record, self.embedder.dimension)
        lowest = 1.0
        for (_, text, title), own in zip(rows, index.vectors_of([r[0] for r in rows]), strict=True):
            fresh = self.embedder.embed_documents(vector_texts(text, title))
            lowest = min(lowest, float((own * fresh).sum(axis=1).min()) if len(own) == len(fresh) else -1.0)
        return lowest

    def score_error(self, question: str, passages: Sequence[dict[str, Any]]) -> float:
        """Largest gap between a served dense_score and the question's fresh cosine with that passage's text."""
        from index.sentences import vector_texts

        query = self.embedder.embed_queries([question])[0]
        worst = 0.0
        for p in passages:
            if p.get("dense_score") is None:
                continue
            fresh = float((self.embedder.embed_documents(vector_texts(p["text"], p["title"])) @ query).max())
            worst = max(worst, abs(fresh - p["dense_score"]))
        return worst

    def sources(self, root: Path) -> list[str]:
        with self.open(root) as store:
            return [d.source for d in store.documents()]

    def text(self, root: Path, source: str) -> str:
        with self.open(root) as store:
            return store.document_text(next(d.id for d in store.documents() if d.source == source))


# ---- results --------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: str
    verdict: str = "correct"
    happened: list[str] = field(default_factory=list)
    check_exit: int | None = None
    check_line: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.happened.append(text)

    def wrong(self, text: str) -> None:
        self.verdict = "WRONG"
        self.happened.append("WRONG: " + text)

    def error(self, text: str) -> None:
        if self.verdict != "WRONG":
            self.verdict = "ERROR"
        self.happened.append("ERROR: " + text)

    def checked(self, proc: Proc) -> None:
        self.check_exit, self.check_line = proc.code, proc.line

    def crashed(self, **steps: Proc) -> bool:
        """Report each step that crashed; True if any did (its outcome then says nothing about the store)."""
        for name, proc in steps.items():
            if proc.crashed:
                self.error(f"{name.replace('_', ' ')} {proc.brief()}")
        return any(proc.crashed for proc in steps.values())


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.rag = rag_command()
        self.probe = Probe()

    def cli(self, *args: str | Path, timeout_s: float = 300.0) -> Proc:
        return run([*self.rag, *map(str, args)], timeout_s)

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def server(self, store: Path, name: str) -> Server:
        return Server(self.rag, store, self.work / f"{name}.serve.log")


def write_facts(folder: Path, facts: Sequence[tuple[str, str, str, str]] = FACTS) -> None:
    for stem, text, _, _ in facts:
        (folder / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")


def cited(answer: dict[str, Any]) -> list[str]:
    return [Path(c["source"]).stem for c in answer.get("citations", [])]


def ask_ok(proc: Proc, stem: str, key: str) -> bool:
    """`rag ask --json` exited 0, cites the question's document and its answer holds the expected words."""
    if proc.code != 0:
        return False
    answer = strict_json(proc.out)
    return isinstance(answer, dict) and cited(answer)[:1] == [stem] and key in answer["text"].lower()


# ---- case 1: an edit inside a multi-batch re-ingest -----------------------------------------------------

COLOURS = ("blue", "green", "grey", "red", "white", "black", "yellow", "brown")
THINGS = ("fuses", "bulbs", "valves", "gaskets", "springs", "batteries", "washers", "cables")
ROOMS = ("workshop", "cellar", "boathouse", "attic", "garage", "pump room")
OLD_EXTRA = "The extra note says the orchard harvest on Lindholm begins in late September."
NEW_EXTRA = "The extra note says the undersea cable to Lindholm was repaired by the crew of the Nordlys in March."
NEW_QUESTION = "Which ship's crew repaired the undersea cable to Lindholm?"


def case_multi_batch_edit(bench: Bench) -> CaseResult:
    result = CaseResult("1 multi-batch edit")
    docs, store = bench.folder("c1-docs"), bench.work / "c1-store"
    for i in range(600):
        colour, thing, room = COLOURS[i % 8], THINGS[i // 8 % 8], ROOMS[i // 64 % 6]
        text = f"Item {i}: the {colour} cabinet in the {room} holds {i} spare {thing}."
        (docs / f"item-{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    extra = docs / "a-extra.txt"  # sorts first: the edit falls in the first of two ~512-chunk batches
    extra.write_text(OLD_EXTRA + "\n", encoding="utf-8")
    first = bench.cli("ingest", docs, "--store", store)
    extra.write_text(NEW_EXTRA + "\n", encoding="utf-8")
    second = bench.cli("ingest", docs, "--store", store)
    result.note(f"ingest 601 files {first.brief()} ({first.seconds:.0f} s); re-ingest {second.brief()}")
    check = bench.cli("check", "--store", store, "--sample", "1000")
    result.checked(check)
    if result.crashed(ingest=first, re_ingest=second, check=check):
        return result
    if first.code or second.code or "replaced 1" not in second.out:
        result.wrong("the re-ingest did not replace exactly the one changed file")
    right, note = bench.probe.top1(store, [("a-extra", NEW_QUESTION, "")])
    cosine = bench.probe.stored_cosine(store, str(extra.resolve()))
    result.note(
        f"dense top-1 for the new text: {'the changed file' if right else 'another file'}; "
        f"stored-vs-fresh cosine of the changed chunk {cosine:.4f}"
    )
    result.details.update(ingest=first.line, reingest=second.line, top1=note, cosine=round(cosine, 4))
    store_right = bool(right) and cosine >= SAMPLE_MIN_COSINE
    if not store_right and check.code == 0:
        result.wrong("rag check said consistent, but the changed chunk's vectors are not its new text's")
    elif not store_right:
        result.wrong("the changed chunk's vectors are not its new text's after a plain re-ingest")
    elif check.code != 0:
        result.wrong(f"rag check --sample 1000 failed after a plain re-ingest: {check.brief()}")
    return result


# ---- case 2: CLI writes while `rag serve` runs ------------------------------------------------------------

X_TEXT = "The Brennholt ferry carries up to forty cars across the fjord every hour."
X_QUESTION = "How many cars does the Brennholt ferry carry across the fjord?"
Y_TEXT = "Beekeepers on Ulvoy island keep a black bee strain that survives the long polar winters."
Y_QUESTION = "Which bee strain do the beekeepers on Ulvoy island keep?"
Z_TEXT = "The Kestrel weather station on Frostfjell recorded minus 41 degrees in February 1966."
Z_QUESTION = "What temperature did the Kestrel weather station on Frostfjell record?"


def case_serve_and_cli(bench: Bench) -> CaseResult:
    result = CaseResult("2 serve + CLI writes")
    docs, new, store = bench.folder("c2-docs"), bench.folder("c2-new"), bench.work / "c2-store"
    write_facts(docs, FACTS[:4])
    (docs / "ferry.txt").write_text(X_TEXT + "\n", encoding="utf-8")
    (new / "bees.txt").write_text(Y_TEXT + "\n", encoding="utf-8")
    ingest = bench.cli("ingest", docs, "--store", store)
    if ingest.code:
        result.error(f"setup ingest {ingest.brief()}")
        return result
    with bench.server(store, "c2") as server:
        x_source = _served_top(bench, result, server, X_QUESTION, "ferry", "before the CLI writes")
        delete = bench.cli("delete", x_source or str(docs / "ferry.txt"), "--store", store)
        add = bench.cli("ingest", new / "bees.txt", "--store", store)
        result.note(f"CLI delete X {delete.brief()}; CLI ingest Y {add.brief()}")
        if result.crashed(CLI_delete=delete, CLI_ingest=add):
            return result
        _served_after_delete(bench, result, server)
        _served_top(bench, result, server, Y_QUESTION, "bees", "Y after the CLI ingest")
        upload = server.http.post("/v1/documents", files={"files": ("kestrel.txt", Z_TEXT.encode(), "text/plain")})
        statuses = [d.get("status") for d in upload.json().get("data", [])] if upload.status_code == 200 else []
        result.note(f"upload Z: HTTP {upload.status_code} {statuses}")
        if statuses != ["ingested"]:
            result.wrong(f"the upload of Z was not ingested: {upload.text[:200]}")
        _served_top(bench, result, server, Z_QUESTION, "kestrel", "Z after the upload")
        if "Traceback" in server.log_path.read_text(errors="replace"):
            result.note(f"serve log holds a traceback: {server.log_tail()}")
    check = bench.cli("check", "--store", store, "--sample", "1000")
    result.checked(check)
    if result.crashed(check=check):
        return result
    stems = sorted(Path(s).stem for s in bench.probe.sources(store))
    result.note(f"after stopping: documents {stems}")
    if "ferry" in stems or "bees" not in stems or "kestrel" not in stems:
        result.wrong("the stored documents are not X absent, Y and Z present")
    if check.code != 0:
        result.wrong(f"rag check --sample 1000 after serve + CLI writes: {check.brief()}")
    return result


def _served_top(bench: Bench, result: CaseResult, server: Server, question: str, stem: str, when: str) -> str | None:
    """Ask the server; the top passage must be `stem`'s with a dense score equal to a fresh cosine."""
    status, answer = server.ask(question)
    if status != 200 or not isinstance(answer, dict):
        result.wrong(f"{when}: HTTP {status} {str(answer)[:200]}")
        return None
    passages = answer["passages"]
    top = passages[0] if passages else {}
    gap = bench.probe.score_error(question, passages)
    result.note(
        f"{when}: top {Path(top.get('source', '-')).stem} dense {top.get('dense_score')}, "
        f"answer {answer['text']!r} cites {cited(answer)}, dense-score gap {gap:.3f}"
    )
    if Path(top.get("source", "")).stem != stem or top.get("dense_score") is None:
        result.wrong(f"{when}: the top passage is not {stem} with a dense score")
    if gap > SCORE_TOLERANCE:
        result.wrong(f"{when}: a served dense_score is off its text's cosine by {gap:.3f} (another text's vector)")
    return top.get("source")


def _served_after_delete(bench: Bench, result: CaseResult, server: Server) -> None:
    status, answer = server.ask(X_QUESTION)
    if status != 200 or not isinstance(answer, dict):
        result.wrong(f"X after delete: HTTP {status} {str(answer)[:200]}")
        return
    stems = [Path(p["source"]).stem for p in answer["passages"]]
    gap = bench.probe.score_error(X_QUESTION, answer["passages"])
    result.note(
        f"X after delete: passages {stems}, answer {answer['text']!r} cites {cited(answer)}, dense-score gap {gap:.3f}"
    )
    if "ferry" in stems or {"ferry", "bees"} & set(cited(answer)) or "forty" in answer["text"].lower():
        result.wrong("the deleted X (or Y in its place) was served for X's question")
    if gap > SCORE_TOLERANCE:
        result.wrong(f"X after delete: a served dense_score is off by {gap:.3f} (a stale vector under a live id)")


# ---- case 3: tampered vector files and a lost manifest ---------------------------------------------------


def _vector_file(store: Path) -> tuple[Path, dict[str, Any]]:
    manifest = json.loads((store / "manifest.json").read_text(encoding="utf-8"))
    return store / "vectors" / manifest["vector_files"]["default"]["file"], manifest


def _rewrite(store: Path, make: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Path:
    """Rewrite the vector file as a valid FAISS IDMap2 of `make(keys, vectors)`; returns its path."""
    import faiss

    path, _ = _vector_file(store)
    old = faiss.read_index(str(path))
    keys = faiss.vector_to_array(old.id_map).astype(np.int64)
    vectors = np.stack([old.reconstruct(int(key)) for key in keys]).astype(np.float32)
    new_keys, new_vectors = make(keys, vectors)
    new = faiss.IndexIDMap2(faiss.IndexFlatIP(old.d))
    new.add_with_ids(np.ascontiguousarray(new_vectors), new_keys)
    faiss.write_index(new, str(path))
    return path


def _rolled_ids(keys: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk's vectors under the next chunk's id (FAISS keys are chunk_id * 64 + slot)."""
    slots = 64
    chunks = np.unique(keys // slots)
    to = dict(zip(chunks.tolist(), np.roll(chunks, 1).tolist(), strict=True))
    return np.array([to[k // slots] * slots + k % slots for k in keys.tolist()], dtype=np.int64), vectors


def _random_vectors(keys: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    noise = np.random.default_rng(7).standard_normal(vectors.shape).astype(np.float32)
    return keys, noise / np.linalg.norm(noise, axis=1, keepdims=True)


def tamper_flip_bytes(store: Path) -> None:
    path, _ = _vector_file(store)
    data = bytearray(path.read_bytes())
    for position in random.Random(7).sample(range(len(data)), 64):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def tamper_permuted_ids(store: Path) -> None:
    _rewrite(store, _rolled_ids)


def tamper_random_vectors(store: Path) -> None:
    _rewrite(store, _random_vectors)


def tamper_permuted_ids_matching_checksum(store: Path) -> None:
    path = _rewrite(store, _rolled_ids)
    _, manifest = _vector_file(store)
    manifest["vector_files"]["default"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (store / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def tamper_lost_manifest(store: Path) -> None:
    (store / "manifest.json").unlink()


TAMPERINGS: tuple[tuple[str, str, Callable[[Path], None]], ...] = (
    ("3a", "64 flipped bytes", tamper_flip_bytes),
    ("3b", "permuted ids, old checksum", tamper_permuted_ids),
    ("3c", "random unit vectors", tamper_random_vectors),
    ("3d", "permuted ids, matching checksum", tamper_permuted_ids_matching_checksum),
    ("3e", "manifest.json deleted", tamper_lost_manifest),
)


def case_tampering(bench: Bench) -> list[CaseResult]:
    docs, base = bench.folder("c3-docs"), bench.work / "c3-base"
    write_facts(docs)
    ingest = bench.cli("ingest", docs, "--store", base)
    clean, clean_note = bench.probe.top1(base, KNOWN)
    results = []
    for key, name, tamper in TAMPERINGS:
        result = CaseResult(f"{key} {name}")
        if ingest.code:
            result.error(f"setup ingest {ingest.brief()}")
        else:
            store = bench.work / f"c3{key[-1]}-store"
            shutil.copytree(base, store)
            tamper(store)
            _replay_tampered(bench, result, store, clean or 0, clean_note, expect_served_wrong=key == "3d")
        results.append(result)
    return results


def _replay_tampered(
    bench: Bench, result: CaseResult, store: Path, clean: int, clean_note: str, expect_served_wrong: bool
) -> None:
    stem, question, key = KNOWN[0]
    asked = bench.cli("ask", question, "--store", store, "--json")
    tampered, tampered_note = bench.probe.top1(store, KNOWN)
    check = bench.cli("check", "--store", store)
    result.checked(check)
    repair = bench.cli("check", "--repair", "--store", store)
    again = bench.cli("ask", question, "--store", store, "--json")
    repaired, repaired_note = bench.probe.top1(store, KNOWN)
    served = "correct" if ask_ok(asked, stem, key) else asked.brief() if asked.code else "a wrong answer"
    result.note(f"ask {served}; dense top-1 clean {clean_note}, tampered {tampered_note}, repaired {repaired_note}")
    result.note(f"repair {repair.brief()}; ask after repair {'correct' if ask_ok(again, stem, key) else again.brief()}")
    result.details.update(
        top1_clean=clean_note,
        top1_tampered=tampered_note,
        top1_repaired=repaired_note,
        ask=asked.brief(),
        repair=repair.line,
        ask_after_repair=again.brief(),
    )
    if result.crashed(ask=asked, check=check, repair=repair, ask_after_repair=again):
        return
    served_wrong = (asked.code == 0 and not ask_ok(asked, stem, key)) or (tampered is not None and tampered < clean)
    if check.code == 0:
        result.wrong("rag check exited 0 on a tampered store")
    if repair.code != 0 or not ask_ok(again, stem, key) or (repaired or 0) < clean:
        result.wrong("rag check --repair did not bring the store back")
    if served_wrong and expect_served_wrong:
        result.note("served wrong before the check, as expected: the checksum matches, only re-embedding can tell")
    elif served_wrong:
        result.wrong("wrong passages were served from the tampered store")
    elif asked.code != 0 and not asked.line.startswith("error:"):
        result.error(f"rag ask failed without a one-line error: {asked.brief()}")
    if result.verdict == "correct" and asked.code != 0:
        result.verdict = "refused"


# ---- cases 4 and 5: hostile records, then metric labels -------------------------------------------------

NAN_TEXT = "The night ferry to Skarvik leaves from pier nine at twenty to midnight."
NAN_QUESTION = "Which pier does the night ferry to Skarvik leave from?"


def case_hostile_records_and_metrics(bench: Bench) -> list[CaseResult]:
    result, metrics = CaseResult("4 hostile records"), CaseResult("5 metrics cardinality")
    docs, store = bench.folder("c4-docs"), bench.work / "c4-store"
    write_facts(docs, FACTS[4:7])
    records = [
        json.dumps({"id": "good", "text": FACTS[7][1], "title": "quartet"}),
        '{"id": "surrogate", "text": "bad \\ud800 record"}',
        json.dumps({"id": "nan", "text": NAN_TEXT, "title": "night ferry", "score": float("nan")}),  # writes NaN
    ]
    (docs / "records.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    ingest = bench.cli("ingest", docs, "--store", store)
    skipped = ingest.skipped
    result.note(f"ingest {ingest.brief()}; {skipped or 'nothing skipped'}")
    if result.crashed(ingest=ingest):
        metrics.error("no store to serve")
        return [result, metrics]
    sources = bench.probe.sources(store) if ingest.code == 0 else []
    kept = sorted(Path(s).name for s in sources)
    result.note(f"stored {kept}")
    good = {"bridge.txt", "library.txt", "mine.txt", "records.jsonl#good", "records.jsonl#nan"}
    if ingest.code != 0 or not good <= set(kept):
        result.wrong("the good documents were not all stored")
    surrogate = next((s for s in sources if s.endswith("#surrogate")), None)
    if surrogate is not None:
        text = bench.probe.text(store, surrogate)
        repaired = not any("\ud800" <= ch <= "\udfff" for ch in text)  # a lone surrogate cannot be UTF-8
        result.note(f"surrogate record stored as {text!r} ({'valid' if repaired else 'NOT valid'} UTF-8)")
        if not repaired:
            result.wrong("the surrogate record was stored with its lone surrogate")
    elif not any("surrogate" in line for line in skipped):
        result.wrong("the surrogate record was neither stored (repaired) nor skipped with a reason")
    try:
        with bench.server(store, "c4") as server:
            _ask_nan_record(result, server)
            _flood_methods(metrics, server)
    except RuntimeError as exc:
        result.error(str(exc))
        metrics.error("no server to measure")
    check = bench.cli("check", "--store", store)
    for case in (result, metrics):
        case.checked(check)
    if result.crashed(check=check):
        pass
    elif check.code != 0:
        result.wrong(f"rag check after the hostile ingest: {check.brief()}")
    return [result, metrics]


def _ask_nan_record(result: CaseResult, server: Server) -> None:
    status, answer = server.ask(NAN_QUESTION)
    if status != 200 or not isinstance(answer, dict):
        result.wrong(f"ask about the NaN-metadata record: HTTP {status}, not valid JSON: {str(answer)[:200]}")
        return
    top = answer["passages"][0] if answer["passages"] else {}
    result.note(
        f"ask about the NaN record: HTTP 200 valid JSON, top {Path(top.get('source', '-')).name} "
        f"metadata {top.get('metadata')}, answer {answer['text']!r}"
    )
    if not top.get("source", "").endswith("#nan"):
        result.wrong("the NaN-metadata record is not the top passage for its question")


def _flood_methods(result: CaseResult, server: Server, count: int = 3000) -> None:
    server.http.get("/metrics")
    before = len(server.http.get("/metrics").content)
    rng, statuses = random.Random(7), Counter()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for _ in range(count):
        method = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=10))
        try:
            conn.request(method, "/healthz")
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
            if response.will_close:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            statuses[type(exc).__name__] += 1
            conn.close()
    conn.close()
    after = len(server.http.get("/metrics").content)
    result.note(
        f"/metrics {before} B before, {after} B after {count} random-method requests (statuses {dict(statuses)})"
    )
    result.details.update(before_bytes=before, after_bytes=after, statuses={str(k): v for k, v in statuses.items()})
    if after - before >= 5 * 1024:
        result.wrong(f"/metrics grew by {after - before} B: client-chosen methods became label values")


# ---- case 6: a zip bomb inside a .docx ------------------------------------------------------------------


def zip_bomb_docx(path: Path, mib: int = 2048) -> None:
    """A valid .docx plus a member of `mib` MiB of zeros, deflated (about 1/1000 of that on disk)."""
    import docx

    document, plain = docx.Document(), io.BytesIO()
    document.add_paragraph("A short paragraph beside a very large attachment.")
    document.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            bomb.writestr(info, source.read(info.filename))
        member = zipfile.ZipInfo("word/media/bomb.bin")
        member.compress_type = zipfile.ZIP_DEFLATED
        zeros = bytes(1024 * 1024)
        with bomb.open(member, "w", force_zip64=True) as out:
            for _ in range(mib):
                out.write(zeros)


def case_zip_bomb(bench: Bench) -> CaseResult:
    result = CaseResult("6 zip bomb")
    docs, store = bench.folder("c6-docs"), bench.work / "c6-store"
    write_facts(docs, FACTS[:1])
    bomb = docs / "bomb.docx"
    zip_bomb_docx(bomb)
    ingest = bench.cli("ingest", docs, "--store", store)  # its peak RSS comes from wait4
    reason = next((line for line in ingest.skipped if "bomb.docx" in line), "")
    result.note(
        f"bomb.docx {bomb.stat().st_size / 1e6:.1f} MB on disk, 2048 MiB inflated; ingest {ingest.brief()}; "
        f"peak RSS {ingest.peak_mb:.0f} MB; {reason or 'bomb not reported as skipped'}"
    )
    result.details.update(exit=ingest.code, reason=reason, peak_rss_mb=round(ingest.peak_mb))
    # the check below loads the same models: its peak is the baseline of any rag process
    check = bench.cli("check", "--store", store)
    result.checked(check)
    if result.crashed(ingest=ingest, check=check):
        return result
    result.note(f"baseline: rag check on the same store peaked at {check.peak_mb:.0f} MB (models loaded)")
    stems = sorted(Path(s).stem for s in bench.probe.sources(store)) if ingest.code == 0 else []
    if ingest.code != 0 or stems != ["lighthouse"]:
        result.wrong(f"the store should hold only the good file; it holds {stems}")
    if not reason:
        result.wrong("the bomb was not skipped with a reason")
    if ingest.peak_mb >= 2048:
        result.wrong(f"peak RSS {ingest.peak_mb:.0f} MB: the bomb was inflated")
    if check.code != 0:
        result.wrong(f"rag check after the bomb: {check.brief()}")
    return result


# ---- the run --------------------------------------------------------------------------------------------

CASES: tuple[Callable[[Bench], CaseResult | list[CaseResult]], ...] = (
    case_multi_batch_edit,
    case_serve_and_cli,
    case_tampering,
    case_hostile_records_and_metrics,
    case_zip_bomb,
)


def run_case(bench: Bench, case: Callable[[Bench], CaseResult | list[CaseResult]]) -> list[CaseResult]:
    """Run one case function; its rows are printed at once, with the scratch folder written as $WORK."""
    started = time.perf_counter()
    try:
        results = case(bench)
    except Exception as exc:  # noqa: BLE001 - one case's failure is reported; the others still run
        failed = CaseResult(case.__name__.removeprefix("case_"))
        failed.error(f"the benchmark failed: {type(exc).__name__}: {exc}")
        results = failed
    results = results if isinstance(results, list) else [results]
    for result in results:
        result.seconds = round((time.perf_counter() - started) / len(results), 1)
        result.happened = [line.replace(str(bench.work), "$WORK") for line in result.happened]
        result.check_line = result.check_line.replace(str(bench.work), "$WORK")
        print_row(result)
    return results


def print_row(result: CaseResult) -> None:
    check = "-" if result.check_exit is None else str(result.check_exit)
    print(f"{result.case:<38} {result.verdict:<8} check {check:<2} {result.seconds:6.1f} s", flush=True)
    for line in result.happened:
        print(f"    {line}")
    if result.check_line:
        print(f"    rag check: {result.check_line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a new temp folder]")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (stores, logs) afterwards")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="rag-integrity-"))).resolve()
    if args.work and work.exists() and any(work.iterdir()):
        parser.error(f"--work {work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        bench = Bench(work)
        print(f"{'case':<38} {'verdict':<8} {'check':<8} {'time':>8}", flush=True)
        results = [r for case in CASES for r in run_case(bench, case)]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    verdicts = Counter(r.verdict for r in results)
    total = time.perf_counter() - started
    summary = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    kept = f"; scratch kept in {work}" if args.keep else ""
    print(f"summary: {len(results)} cases: {summary}; {total:.0f} s{kept}")
    if args.json:
        payload = {"seconds": round(total, 1), "verdicts": dict(verdicts), "cases": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if verdicts["WRONG"] or verdicts["ERROR"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
