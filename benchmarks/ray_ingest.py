"""Local against Ray ingestion of the SQuAD v1.1 dev paragraphs, each into a fresh store, on this machine.

HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_ingest.py [--articles N] [--num-cpus N] [--embed-actors N]

Ray runs as a local runtime (`ray.init(num_cpus=...)`), started and timed apart from the ingest. Both engines use
the store's default embedder settings; the stores are then compared: same chunks under the same ids, and the
largest difference between their vectors (bfloat16 on CPUs that have it, where vectors move by ~1e-3 with the
make-up of a batch, and the engines batch differently). CPU seconds count this process and every process
under it (Ray's raylet and workers, with the workers it has reaped; Linux /proc): unlike wall time, they barely
move when other work shares the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from index import Store
from index.manifest import read as read_manifest
from index.vectors import FaissIndex
from ingest.pipeline import ingest_paths
from ingest.ray_engine import RayOptions, import_ray, ingest_paths_ray

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def subset(data: Path, articles: int | None, folder: Path) -> Path:
    """The SQuAD file itself, or a copy of its first `articles` articles."""
    if articles is None:
        return data
    raw = json.loads(data.read_text())
    raw["data"] = raw["data"][:articles]
    path = folder / f"{data.stem}-first{articles}.json"
    path.write_text(json.dumps(raw))
    return path


def vectors(root: Path) -> dict[int, np.ndarray]:
    record = read_manifest(root).vector_files["default"]
    index = FaissIndex.load(root / "vectors" / record.file, use_gpu=False)
    ids = sorted(int(i) for i in index.ids())
    return dict(zip(ids, index.vectors_of(ids), strict=True))


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and its live descendants, each with the children it has reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone since the listing
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        seconds[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += seconds.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def run_local(data: Path, root: Path) -> dict[str, float]:
    with Store.open(root) as store:
        store.embedder.embed_queries(["load the model"])
        cpu, started = tree_cpu_seconds(os.getpid()), time.perf_counter()
        report = ingest_paths(store, [data], progress=False)
        wall, cpu = time.perf_counter() - started, tree_cpu_seconds(os.getpid()) - cpu
    return {"wall": wall, "cpu": cpu, "chunks": report.chunks, "documents": report.documents}


def run_ray(data: Path, root: Path, cluster: RayOptions) -> dict[str, float]:
    ray = import_ray()
    started = time.perf_counter()
    ray.init(address="local", num_cpus=cluster.num_cpus, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started
    try:
        with Store.open(root) as store:
            store.embedder.embed_queries(["load the model"])
            cpu, started = tree_cpu_seconds(os.getpid()), time.perf_counter()
            report = ingest_paths_ray(store, [data], progress=False, cluster=cluster)
            wall, cpu = time.perf_counter() - started, tree_cpu_seconds(os.getpid()) - cpu
    finally:
        ray.shutdown()
    return {"wall": wall, "cpu": cpu, "startup": startup, "chunks": report.chunks, "documents": report.documents}


def compare(local: Path, remote: Path) -> tuple[bool, float, float]:
    """Same chunk ids with the same vector counts; the largest absolute difference and the lowest cosine."""
    left, right = vectors(local), vectors(remote)
    same = sorted(left) == sorted(right) and all(left[i].shape == right[i].shape for i in left)
    if not same:
        return False, float("nan"), float("nan")
    a = np.concatenate([left[i] for i in sorted(left)])
    b = np.concatenate([right[i] for i in sorted(left)])
    return True, float(np.abs(a - b).max()), float((a * b).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--articles", type=int, default=None, help="only the first N articles (default: all 48)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray runtime")
    parser.add_argument("--embed-actors", type=int, default=None, help="default: as the ray engine chooses")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rag-ray-bench-"))
    data = subset(args.data, args.articles, folder)
    cluster = RayOptions(num_cpus=args.num_cpus, embed_actors=args.embed_actors)

    load_before = os.getloadavg()[0]
    local = run_local(data, folder / "local")
    remote = run_ray(data, folder / "ray", cluster)
    same, max_diff, min_cosine = compare(folder / "local", folder / "ray")
    ratio = remote["wall"] / local["wall"]

    print(f"command          HF_HUB_OFFLINE=1 {shlex.join(['.venv/bin/python', *sys.argv])}")
    print(f"data             {data} ({local['documents']} paragraphs, {local['chunks']} chunks)")
    print(
        f"machine          {os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"ray              local runtime, {args.num_cpus} CPUs, embed actors {args.embed_actors or 'default'}")
    print()
    print("| engine | wall s | chunks/s | CPU s | start-up s |")
    print("|---|---|---|---|---|")
    for name, run in (("local", local), ("ray", remote)):
        startup = f"{run['startup']:.1f}" if "startup" in run else "-"
        print(f"| {name} | {run['wall']:.1f} | {run['chunks'] / run['wall']:.1f} | {run['cpu']:.1f} | {startup} |")
    print()
    with_startup = (remote["wall"] + remote["startup"]) / local["wall"]
    print(f"overhead ratio   {ratio:.2f} (ray wall / local wall; {with_startup:.2f} counting Ray's start-up)")
    print(f"CPU ratio        {remote['cpu'] / local['cpu']:.2f} (ray CPU s / local CPU s)")
    print(f"same chunks      {same and remote['chunks'] == local['chunks']}")
    print(f"vectors          max abs difference {max_diff:.2e}, lowest cosine {min_cosine:.5f}")


if __name__ == "__main__":
    main()
