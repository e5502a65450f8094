"""`reader.json`: what a trained reader folder holds and how it was made. Plain JSON, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reader.calibration import NoAnswerCalibration
from reader.errors import ReaderModelError

MANIFEST = "reader.json"
FORMAT_VERSION = 1


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".reader-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"format_version": FORMAT_VERSION, **manifest}, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReaderModelError(
            f"{folder}: not a reader folder (no {MANIFEST}); train one with `rag train reader`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReaderModelError(f"{path}: unreadable reader manifest: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ReaderModelError(f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    return manifest


def manifest_calibration(manifest: dict[str, Any]) -> NoAnswerCalibration:
    values = manifest.get("calibration") or {}
    return NoAnswerCalibration(**{k: float(v) for k, v in values.items() if k in ("temperature", "shift", "threshold")})
