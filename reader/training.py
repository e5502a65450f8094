"""`rag train reader`: fine-tune a question-answering head on SQuAD-format files with transformers' Trainer
(seeded, resumable checkpoints, bf16 where the hardware has it, CUDA when present), then validate on held-out
articles, calibrate the no-answer probability and write a plain model folder with its manifest."""

from __future__ import annotations

import inspect
import math
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from reader.device import best_device, cpu_has_fast_bf16
from reader.errors import ReaderError
from reader.features import training_features
from reader.manifest import write_manifest
from reader.model import SpanModel
from reader.squad_files import file_sha256, training_split
from reader.validation import validate

CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[Path, ...]
    base: str  # a model folder or hub name (the caller resolves packaged names)
    out: Path
    epochs: float = 2.0
    max_seq_len: int = 256
    stride: int = 128
    batch_size: int = 16
    lr: float = 5e-5
    seed: int = 13
    resume: bool = False
    split_file: Path | None = None  # an article split; its `exclude_split` articles are never read
    exclude_split: str = "test"
    validation_fraction: float = 0.1
    distractors: int = 4
    max_answer_tokens: int = 30
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    save_steps: int = 200
    progress: bool = True
    base_label: str = field(default="", compare=False)  # how the base was named, for the manifest

    def hyperparameters(self) -> dict[str, Any]:
        keys = (
            "epochs",
            "max_seq_len",
            "stride",
            "batch_size",
            "lr",
            "seed",
            "validation_fraction",
            "distractors",
            "max_answer_tokens",
            "warmup_ratio",
            "weight_decay",
        )
        return {k: getattr(self, k) for k in keys}


class _Rows:
    """A list of feature dicts as the map-style dataset the Trainer expects."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _length_grouping(arguments: type) -> dict[str, Any]:
    """Batches of similar lengths (less padding): the option's name changed within transformers 5."""
    if "train_sampling_strategy" in inspect.signature(arguments.__init__).parameters:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def _validate_config(config: TrainConfig) -> None:
    checks = {
        "epochs": config.epochs > 0,
        "batch_size": config.batch_size > 0,
        "lr": config.lr > 0,
        "max_seq_len": 96 <= config.max_seq_len <= 512,
        "stride": 0 < config.stride < config.max_seq_len,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ReaderError(f"invalid training settings: {', '.join(f'{n}={getattr(config, n)!r}' for n in bad)}")
    if config.resume and not (config.out / CHECKPOINTS).is_dir():
        raise ReaderError(f"--resume: no checkpoints in {config.out / CHECKPOINTS}")


def train_reader(config: TrainConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, validate, calibrate and save; returns the manifest written to `config.out`."""
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    _validate_config(config)
    started = time.perf_counter()
    train, held, excluded = training_split(
        config.data, config.split_file, config.exclude_split, config.validation_fraction, config.seed
    )
    echo(f"{len(train)} training questions, {len(held)} validation questions ({excluded} articles excluded)")
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    model = AutoModelForQuestionAnswering.from_pretrained(config.base, dtype=torch.float32)
    rows = training_features(tokenizer, train, config.max_seq_len, config.stride)
    steps = math.ceil(len(rows) / config.batch_size) * config.epochs
    device = best_device()
    bf16 = device == "cuda" or cpu_has_fast_bf16()
    args = TrainingArguments(
        output_dir=str(config.out / CHECKPOINTS),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        warmup_steps=int(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=max(1, min(50, config.save_steps)),
        report_to="none",
        **_length_grouping(TrainingArguments),
        disable_tqdm=not config.progress,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Rows(rows),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8),
    )
    result = trainer.train(resume_from_checkpoint=True if config.resume else None)
    trained_s = time.perf_counter() - started
    # The shipped folder holds fp16 weights (half the size; inference upcasts or runs in bf16).
    model = trainer.model.to("cpu").half()
    model.save_pretrained(config.out)
    tokenizer.save_pretrained(config.out)
    echo(f"trained {result.global_step} steps in {trained_s:.0f} s; validating on {len(held)} questions")
    reader = SpanModel(config.out, config.max_seq_len, config.stride, config.max_answer_tokens, device=device)
    validation = validate(reader, held, config.distractors) if held else {}
    manifest = {
        "kind": "extractive-reader",
        "base_model": config.base_label or config.base,
        "training_files": [{"path": str(p), "sha256": file_sha256(Path(p))} for p in config.data],
        "excluded_articles": {
            "split_file": str(config.split_file),
            "split": config.exclude_split,
            "count": excluded,
        }
        if config.split_file
        else None,
        "training_questions": len(train),
        "training_windows": len(rows),
        "hyperparameters": config.hyperparameters(),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or 'x86_64'})",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "validation": {k: v for k, v in validation.items() if k != "calibration"},
        "calibration": validation.get("calibration", {"temperature": 1.0, "shift": 0.0, "threshold": 1.0}),
        "inference": {
            "max_seq_len": config.max_seq_len,
            "stride": config.stride,
            "max_answer_tokens": config.max_answer_tokens,
        },
        "versions": {p: metadata.version(p) for p in ("torch", "transformers", "tokenizers")},
    }
    write_manifest(config.out, manifest)
    return manifest


def remove_checkpoints(out: Path) -> None:
    """Drop the resumable checkpoints (optimizer state) once a run is final."""
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
