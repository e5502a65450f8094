"""Re-run a trained reader's validation (the same held-out training articles) and refit its no-answer
calibration and thresholds in its manifest, e.g. after the validation rules change. Never reads test articles.

    python scripts/calibrate_reader.py models/reader --data-dir ../shared/data/squad
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reader.manifest import read_manifest, write_manifest  # noqa: E402
from reader.model import SpanModel  # noqa: E402
from reader.squad_files import training_split  # noqa: E402
from reader.validation import validate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding the manifest's training files")
    args = parser.parse_args()
    manifest = read_manifest(args.folder)
    hp = manifest["hyperparameters"]
    files = [args.data_dir / Path(f["path"]).name for f in manifest["training_files"]]
    excluded = manifest.get("excluded_articles") or {}
    split_file = args.data_dir / Path(excluded["split_file"]).name if excluded else None
    _, held, _ = training_split(files, split_file, excluded.get("split", "test"), hp["validation_fraction"], hp["seed"])
    model = SpanModel(args.folder, hp["max_seq_len"], hp["stride"], hp["max_answer_tokens"])
    validation = validate(model, held, hp["distractors"])
    manifest["calibration"] = validation.pop("calibration")
    manifest["validation"] = validation
    manifest.pop("format_version", None)
    write_manifest(args.folder, manifest)
    print(json.dumps({"calibration": manifest["calibration"], "validation": validation}, indent=2))


if __name__ == "__main__":
    main()
