"""`rag eval ...`: run evaluations on SQuAD or JSONL datasets, list past runs, compare two runs.

Only typer and the settings are imported here; the store, the models and matplotlib load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rag.config import RagSettings, settings_from

eval_app = typer.Typer(help="Offline evaluation runs.", no_args_is_help=True, add_completion=False)

DataOpt = Annotated[Path, typer.Option("--data", help="dataset file")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="store folder [env RAG_STORE; default ./store]")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="answer a seeded sample of N questions")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the --limit sample")]
ModeOpt = Annotated[str, typer.Option("--mode", help="closed: answer from retrieval; gold: from the own paragraph")]
KOpt = Annotated[int | None, typer.Option("--k", help="passages retrieved for the generator [default: RAG_K]")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="output folder [default: <store>/eval-runs/<run-id>]")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="name the run; an existing id is resumed")]
RetrievalOnlyOpt = Annotated[bool, typer.Option("--retrieval-only", help="retrieval metrics only, no generation")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="questions per batch (and per commit)")]
GeneratorOpt = Annotated[str | None, typer.Option("--generator", help="packaged name, GGUF file or folder")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="only the questions of this split's articles (test)")]
SplitFileOpt = Annotated[
    Path | None, typer.Option("--split-file", help="article split file [default: dev-split.json beside --data]")
]
ReaderOpt = Annotated[str | None, typer.Option("--reader", help="extractive (default) | generative")]
QuietOpt = Annotated[bool, typer.Option("--no-progress", help="no progress bars")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code=code)


def _run(fmt: str, data: Path, settings: RagSettings, **config: object) -> None:
    from rag.cli import _quiet_libraries

    _quiet_libraries()
    from eval.datasets import load_dataset
    from eval.errors import EvalError
    from eval.report import format_metrics
    from eval.runner import EvalConfig, run_evaluation

    try:
        dataset = load_dataset(data, fmt)  # type: ignore[arg-type]
        result = run_evaluation(dataset, EvalConfig(**config), settings, echo=typer.echo)  # type: ignore[arg-type]
    except EvalError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(format_metrics(result.metrics))


@eval_app.command()
def squad(
    data: DataOpt,
    store: StoreOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    mode: ModeOpt = "closed",
    k: KOpt = None,
    out: OutOpt = None,
    run_id: RunIdOpt = None,
    retrieval_only: RetrievalOnlyOpt = False,
    batch_size: BatchOpt = 16,
    generator: GeneratorOpt = None,
    reader: ReaderOpt = None,
    split: SplitOpt = None,
    split_file: SplitFileOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Evaluate on a SQuAD v1.1/v2.0 file: every paragraph goes into the dataset's own store."""
    from rag.cli import reader_for

    settings = settings_from(store, generator=generator, reader=reader_for(reader, generator))
    _run(
        "squad",
        data,
        settings,
        mode=mode,
        k=k,
        limit=limit,
        seed=seed,
        split=split,
        split_file=split_file,
        retrieval_only=retrieval_only,
        batch_size=batch_size,
        run_id=run_id,
        out=out,
        progress=not no_progress,
    )


@eval_app.command()
def jsonl(
    data: DataOpt,
    store: StoreOpt = None,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="collection (no contexts)")] = None,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    mode: ModeOpt = "closed",
    k: KOpt = None,
    out: OutOpt = None,
    run_id: RunIdOpt = None,
    retrieval_only: RetrievalOnlyOpt = False,
    batch_size: BatchOpt = 16,
    generator: GeneratorOpt = None,
    reader: ReaderOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Evaluate on JSONL records {question, answers, [id, context, source]}: with contexts they form the
    dataset's own store; without, questions are asked of --store/--collection."""
    from rag.cli import reader_for

    settings = settings_from(store, generator=generator, collection=collection, reader=reader_for(reader, generator))
    _run(
        "jsonl",
        data,
        settings,
        mode=mode,
        k=k,
        limit=limit,
        seed=seed,
        retrieval_only=retrieval_only,
        batch_size=batch_size,
        run_id=run_id,
        out=out,
        progress=not no_progress,
    )


@eval_app.command()
def perplexity(
    data: Annotated[Path, typer.Option("--data", help="a UTF-8 text file")],
    store: StoreOpt = None,
    generator: GeneratorOpt = None,
    window: Annotated[int, typer.Option("--window", help="tokens per forward pass")] = 1024,
    stride: Annotated[int, typer.Option("--stride", help="tokens between window starts (< window)")] = 512,
    out: OutOpt = None,
    run_id: RunIdOpt = None,
) -> None:
    """The generator's token-level perplexity on a text (transformers backend, sliding window), stored as a run:
    perplexity, bits per byte, tokens, seconds."""
    from rag.cli import _quiet_libraries

    _quiet_libraries()
    from eval.errors import EvalError
    from eval.perplexity import run_perplexity
    from eval.report import format_metrics

    settings = settings_from(store, generator=generator)
    try:
        result = run_perplexity(data, settings, window, stride, run_id, out, echo=typer.echo)
    except EvalError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(format_metrics(result.metrics))


def _open_runs(store: Path | None):  # noqa: ANN202 - index.Store, imported lazily
    from index import Store

    settings = settings_from(store)
    return Store.open(settings.store, database_url=settings.database_url)


def _num(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


@eval_app.command("list")
def list_(store: StoreOpt = None, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Past runs: id, date, dataset, mode, questions, EM, F1, R@1, R@5, perplexity."""
    from dataclasses import asdict

    from eval.runs import list_runs

    with _open_runs(store) as opened:
        infos = list_runs(opened.engine)
    if as_json:
        typer.echo(json.dumps([asdict(info) for info in infos], indent=2, default=str))
        return
    if not infos:
        typer.echo("no evaluation runs")
        return
    typer.echo("id\tdate\tstatus\tdataset\tmode\tn\tEM\tF1\tR@1\tR@5\tPPL")
    for info in infos:
        mode = "retrieval" if info.config.get("retrieval_only") else info.config.get("mode", "?")
        n = info.metrics.get("answered") or info.metrics.get("questions", "-")
        cells = [info.id, f"{info.created_at:%Y-%m-%d %H:%M}", info.status, Path(info.dataset).name, mode, str(n)]
        cells += [_num(info.metrics, key) for key in ("exact_match", "f1", "recall@1", "recall@5", "perplexity")]
        typer.echo("\t".join(cells))


@eval_app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="the baseline run id")],
    run_b: Annotated[str, typer.Argument(help="the run compared with it")],
    store: StoreOpt = None,
    show: Annotated[int, typer.Option(help="flipped questions shown per direction")] = 20,
) -> None:
    """Metric deltas (B - A) and the questions whose exact match flipped."""
    from eval.errors import RunError
    from eval.runs import compare_runs

    with _open_runs(store) as opened:
        try:
            result = compare_runs(opened.engine, run_a, run_b)
        except RunError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"A = {result.a.id} ({result.a.status}), B = {result.b.id} ({result.b.status})")
    width = max((len(d.name) for d in result.deltas), default=6)
    typer.echo(f"{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}")
    for d in result.deltas:
        typer.echo(f"{d.name:<{width}}  {d.a:>10.4g}  {d.b:>10.4g}  {d.delta:>+10.4g}")
    typer.echo(f"questions answered in both: {result.shared}")
    if not result.shared:  # perplexity runs, or runs over other questions: no flips to show
        return
    for label, flips in (("EM 0 -> 1", result.gained), ("EM 1 -> 0", result.lost)):
        typer.echo(f"{label}: {len(flips)}")
        for flip in flips[:show]:
            typer.echo(f"  {flip.question_id}: {flip.question}")
            typer.echo(f"    gold {list(flip.golds[:3])}; A {flip.prediction_a!r}; B {flip.prediction_b!r}")
