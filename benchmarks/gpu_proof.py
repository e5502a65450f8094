"""FAISS and the embedder on a CUDA GPU against the CPU, on the same vectors: speed, equal results, fallback.

    bash benchmarks/gpu_proof.sh            (installs faiss-gpu-cu12 into a side folder, then runs this)
    python benchmarks/gpu_proof.py [--vectors 2000000] [--out DIR]

Measures, each figure printed and written to DIR/gpu_proof.json:
- embedding throughput (texts/s) of the packaged embedder on the GPU and on the CPU, SQuAD paragraphs;
- a store built on the GPU: SQuAD v1.1 dev ingested by `ingest_paths` (chunks/s), its search on the GPU;
- FAISS search q/s over `--vectors` vectors (made as in benchmarks/index_scale.py), exact and IVF-SQ8, on the
  GPU clone `FaissIndex` searches with and on the CPU index, batched and one at a time;
- recall equality: the GPU's top-10 chunk ids against the CPU's for the same index;
- the fallback: the same search in a child process with CUDA hidden gives the CPU's results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index_scale import SyntheticChunks, real_vectors  # noqa: E402

from index import layouts  # noqa: E402
from index.vectors import FaissIndex, gpu_available  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad"


def timed_search(index: FaissIndex, queries: np.ndarray, batch: bool) -> tuple[float, np.ndarray]:
    """(queries per second, top-10 chunk ids)."""
    index.search(queries[:8], 10)  # warm up: the GPU clone is made on first search
    started = time.perf_counter()
    if batch:
        found = index.search(queries, 10)[1]
    else:
        found = np.concatenate([index.search(q[None], 10)[1] for q in queries])
    return len(queries) / (time.perf_counter() - started), found


def embedding_rate(device: str, texts: list[str]) -> float:
    from index.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(device=device, batch_size=256 if device == "cuda" else 32)
    embedder.embed_documents(texts[:64])
    started = time.perf_counter()
    embedder.embed_documents(texts)
    return len(texts) / (time.perf_counter() - started)


def squad_paragraphs() -> list[str]:
    data = json.loads((DATA / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    return [p["context"] for article in data for p in article["paragraphs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=2_000_000, help="about this many vectors (6 per chunk)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", tempfile.gettempdir())))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    real, counts, all_queries = real_vectors(args.out / "real.npz")
    queries = all_queries[:1000]
    source = SyntheticChunks(max(1, args.vectors * len(counts) // len(real)), real, counts)
    if args.child:  # the fallback check: CUDA is hidden from this process
        index = FaissIndex.create(source.dimension, use_gpu=None)
        _fill(index, source)
        np.save(args.out / "child.npy", index.search(queries, 10)[1])
        print(json.dumps({"child_gpu_available": gpu_available()}))
        return

    results: dict[str, object] = {"gpu_available": gpu_available(), "vectors": len(source)}
    print(json.dumps(results))
    texts = squad_paragraphs()
    import torch

    devices = ("cuda", "cpu") if torch.cuda.is_available() else ("cpu",)  # without a GPU: a dry run of the script
    results["embed_texts_per_s"] = {device: round(embedding_rate(device, texts)) for device in devices}
    print(json.dumps(results["embed_texts_per_s"]))

    from index import Store
    from ingest.pipeline import ingest_paths

    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "store") as store:
        report = ingest_paths(store, [DATA / "dev-v1.1.json"], progress=False)
        hits = store.dense_search(store.embedder.embed_queries(["Which NFL team won Super Bowl 50?"]), 3)[0]
        results["store_on_gpu"] = {
            "chunks": report.chunks,
            "chunks_per_s": round(report.chunks / report.seconds, 1),
            "top_source": store.passages(hits)[0].source if hits else None,
            "consistent": all(r.consistent for r in store.check(sample=20)),
        }
    print(json.dumps(results["store_on_gpu"]))

    exact = FaissIndex.create(source.dimension, use_gpu=True)
    _fill(exact, source)
    for name, index in (("Flat", exact), ("IVF-SQ8", layouts.rebuild(exact, "IVF4096,SQ8", progress=False))):
        cpu = index.sharing(use_gpu=False)
        row: dict[str, object] = {"nprobe": index.spec.nprobe}
        for batch in (True, False):
            gpu_qps, gpu_ids = timed_search(index, queries, batch)
            cpu_qps, cpu_ids = timed_search(cpu, queries if batch else queries[:200], batch)
            mode = "batched" if batch else "single"
            row[f"{mode}_gpu_qps"], row[f"{mode}_cpu_qps"] = round(gpu_qps), round(cpu_qps)
            if batch:
                row["gpu_equals_cpu_top10"] = layouts.chunk_recall(gpu_ids, cpu_ids)
        results[name] = row
        print(name, json.dumps(row))

    child = subprocess.run(
        [sys.executable, __file__, "--child", "--vectors", str(args.vectors), "--out", str(args.out)],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    fallback = np.load(args.out / "child.npy")
    results["fallback"] = {
        **json.loads(child.stdout.strip().splitlines()[-1]),
        "top10_equal_to_gpu": layouts.chunk_recall(fallback, exact.search(queries, 10)[1]),
    }
    print(json.dumps(results["fallback"]))
    (args.out / "gpu_proof.json").write_text(json.dumps(results, indent=2))


def _fill(index: FaissIndex, source: SyntheticChunks) -> None:
    ids = source.vector_ids()
    for start in range(0, len(ids), layouts.BLOCK):
        block = ids[start : start + layouts.BLOCK]
        index.add_vectors(block, source.vectors_by_id(block))


if __name__ == "__main__":
    main()
