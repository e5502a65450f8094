"""Ingestion benchmark: all SQuAD v1.1 dev paragraphs into a fresh store; prints throughput and peak memory.

HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/squad_ingest.py [--data PATH] [--store DIR]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from index import Store
from ingest.pipeline import ingest_paths

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--store", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="rag-bench-"))

    started = time.perf_counter()
    with Store.open(store_dir) as store:
        store.embedder.embed_queries(["load the model"])
        load_s = time.perf_counter() - started
        report = ingest_paths(store, [args.data], progress=False)
        consistent = all(r.consistent for r in store.check())
    total_s = time.perf_counter() - started
    ingest_s = report.seconds
    print(f"store            {store_dir}")
    print(f"documents        {report.documents}")
    print(f"chunks           {report.chunks}")
    print(f"model load       {load_s:.1f} s")
    print(f"ingest           {ingest_s:.1f} s")
    print(f"chunks/s         {report.chunks / ingest_s:.1f}")
    print(f"paragraphs/s     {report.documents / ingest_s:.1f}")
    print(f"total wall       {total_s:.1f} s")
    print(f"peak RSS         {peak_rss_mb():.0f} MB")
    print(f"consistent       {consistent}")


if __name__ == "__main__":
    main()
