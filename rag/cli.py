"""The `rag` command: a thin adapter over the ingestion pipeline, the store and the QA API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from rag.config import RagSettings, settings_from

EXIT_CODES = (
    "Exit codes: 0 done; 1 the command ran and found a problem (an inconsistent store, nothing ingested, an unknown "
    "document); 2 bad usage or input (options, data files, models); 3 the store cannot be used as it is (a vector "
    "file that fails verification, a lost manifest, another embedder, another process writing)."
)
app = typer.Typer(help="Offline retrieval-augmented question answering.", epilog=EXIT_CODES, no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]

StoreOpt = Annotated[Path | None, typer.Option("--store", help="store folder [env RAG_STORE; default ./store]")]
CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c", help="collection name [default: default]")]


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _open_store(settings: RagSettings, rebuild_manifest: bool = False):  # noqa: ANN202 - index.Store, lazily
    from index import SentenceTransformerEmbedder, Store

    embedder = SentenceTransformerEmbedder(settings.embedder) if settings.embedder else None
    return Store.open(settings.store, embedder, settings.database_url, rebuild_manifest=rebuild_manifest)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    include: Annotated[list[str] | None, typer.Option(help="glob of files to take (repeatable)")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="glob of files or folders to skip (repeatable)")] = None,
    text_field: Annotated[str, typer.Option(help="JSON/JSONL field holding the text")] = "text",
    title_field: Annotated[str, typer.Option(help="JSON/JSONL field holding the title")] = "title",
    chunk_tokens: Annotated[int | None, typer.Option(help="chunk size in embedder tokens")] = None,
    overlap_tokens: Annotated[int | None, typer.Option(help="overlap between chunks, in tokens")] = None,
    embedder: Annotated[str | None, typer.Option(help="embedder for a new store (name or path)")] = None,
    engine: Annotated[str, typer.Option(help="local | ray (load, chunk and embed on Ray workers)")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join: HEAD:6379, or auto on a node of it (ray only)")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="print each file a folder walk passed over, and why")
    ] = False,
) -> None:
    """Load, chunk, embed and store documents. Unchanged files are skipped; changed ones replaced.

    A folder walk reads the file types a loader exists for; the summary counts what it passed over (other
    types, hidden and excluded files and folders) by reason, and --verbose lists them."""
    _quiet_libraries()
    from ingest.chunking import TokenChunker
    from ingest.loaders import LoaderOptions

    run = _ingest_engine(engine, address)
    settings = settings_from(
        store, collection=collection, embedder=embedder, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens
    )
    with _open_store(settings) as opened:
        limit = opened.embedder.max_tokens - 2
        chunker = TokenChunker(
            opened.embedder.tokenizer, min(settings.chunk_tokens, limit), min(settings.overlap_tokens, limit // 2)
        )
        report = run(
            opened,
            paths,
            collection=settings.collection,
            include=include or (),
            exclude=exclude or (),
            chunker=chunker,
            options=LoaderOptions(text_field=text_field, title_field=title_field),
            on_error=lambda e: typer.secho(f"skipped {e.path}: {e.reason}", fg="yellow", err=True),
        )
    if verbose:
        for entry in report.passed_over:
            typer.echo(f"passed over {entry.path}: {entry.reason}", err=True)
    typer.echo(
        f"files {report.files}, documents {report.documents} (added {report.added}, replaced {report.replaced}, "
        f"unchanged {report.unchanged}), chunks {report.chunks}, skipped {report.skipped}, "
        f"errors {len(report.errors)}, passed over {report.passed_over_summary()}, {report.seconds:.1f} s"
    )
    if not report.ok:
        raise typer.Exit(code=1)


def _ingest_engine(engine: str, address: str | None):  # noqa: ANN202 - an ingest_paths-like function
    """The ingest function of `engine`; bad usage (an unknown engine, an address without ray) is a BadParameter."""
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown engine {engine!r}; choose local or ray", param_hint="--engine")
    if engine == "local":
        if address is not None:
            raise typer.BadParameter("--address needs --engine ray", param_hint="--address")
        from ingest.pipeline import ingest_paths

        return ingest_paths
    from functools import partial

    from ingest.ray_engine import RayOptions, import_ray, ingest_paths_ray

    import_ray()  # before the store opens: a missing extra is one line, not a half-started run
    return partial(ingest_paths_ray, cluster=RayOptions(address=address))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    k: Annotated[int | None, typer.Option("-k", help="passages to retrieve")] = None,
    style: Annotated[str | None, typer.Option(help="short | sentence")] = None,
    reader: Annotated[str | None, typer.Option(help="extractive (default) | generative")] = None,
    generator: Annotated[str | None, typer.Option(help="generative reader: packaged name, GGUF file, folder")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole answer as JSON")] = False,
) -> None:
    """Answer a question from the store, with its sources."""
    _quiet_libraries()
    from rag.api import RAG

    settings = settings_from(
        store, collection=collection, generator=generator, answer_style=style, reader=reader_for(reader, generator)
    )
    qa = RAG.open(settings=settings)
    try:
        answer = qa.ask(question, k=k)
    finally:
        qa.close()
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), indent=2, default=str))
        return
    typer.echo(answer.text)
    for citation in answer.citations:
        typer.echo(f"  [{citation.number}] {citation.source} chars {citation.start}-{citation.end}: {citation.quote!r}")
    typer.echo("sources:")
    for number, passage in enumerate(answer.passages, start=1):
        typer.echo(f"  [{number}] {passage.score:.3f} {passage.source} (chunk {passage.chunk_id})")
    timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in answer.timings.items())
    typer.echo(f"timings: {timings}")


@app.command()
def delete(
    source: Annotated[str, typer.Argument(help="the document's source, as `rag docs` lists it")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Remove a document from SQL, FAISS and the keyword index."""
    _quiet_libraries()
    from index import NotFoundError

    settings = settings_from(store, collection=collection)
    with _open_store(settings) as opened:
        try:
            removed = opened.delete(source, settings.collection)
        except NotFoundError as exc:
            # The write lock was taken and the store healed first: whatever a killed delete left is gone now.
            typer.secho(f"{exc}: nothing left to delete", fg="yellow", err=True)
            return
    typer.echo(f"deleted {source} ({removed} chunks)")


@app.command()
def docs(store: StoreOpt = None, collection: CollectionOpt = None, as_json: JsonOpt = False) -> None:
    """List stored documents."""
    from dataclasses import asdict

    settings = settings_from(store, collection=collection)
    with _open_store(settings) as opened:
        documents = opened.documents(collection)
    if as_json:
        typer.echo(json.dumps([asdict(doc) for doc in documents], indent=2, default=str))
        return
    for doc in documents:
        typer.echo(f"{doc.id}\t{doc.collection}\t{doc.chunks} chunks\t{doc.source}")


@app.command()
def check(
    store: StoreOpt = None,
    repair: Annotated[
        bool, typer.Option(help="fix what differs: embed missing vectors, drop orphans, rebuild a bad vector file")
    ] = False,
    sample: Annotated[int, typer.Option(help="chunks per collection re-embedded and compared to their vectors")] = 50,
    embedder: Annotated[
        str | None, typer.Option(help="with --repair on a store whose manifest is lost: the embedder to rebuild with")
    ] = None,
) -> None:
    """Prove that SQL, FAISS and the keyword index agree and that the vector files are the ones the store wrote."""
    _quiet_libraries()
    settings = settings_from(store, embedder=embedder)
    with _open_store(settings, rebuild_manifest=repair) as opened:
        reports = opened.repair(sample=sample) if repair else opened.check(sample=sample)
    for r in reports:
        state = "consistent" if r.consistent else "INCONSISTENT: " + "; ".join(r.problems())
        typer.echo(
            f"{r.collection}: {state} (sql {r.sql_chunks}, faiss {r.vector_chunks}, keyword {r.keyword_chunks}, "
            f"vectors re-embedded for {r.sampled_chunks} chunks)"
        )
    if not all(r.consistent for r in reports):
        raise typer.Exit(code=1)


index_app = typer.Typer(help="Each collection's vector index: its type, and rebuilds.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("show")
def index_show(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """The index type, parameters, measured recall and size of each collection's vectors."""
    from dataclasses import asdict

    settings = settings_from(store)
    with _open_store(settings) as opened:
        rows = []
        for name, record in sorted(opened.vector_files().items()):
            file_bytes = (opened.vectors_dir / record.file).stat().st_size
            rows.append(
                {**asdict(record), "collection": name, "file_bytes": file_bytes,
                 "bytes_per_chunk": round(file_bytes / record.chunks) if record.chunks else 0}
            )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        spec = row["index"]
        probes = f", nlist {spec['nlist']}, nprobe {spec['nprobe']}" if spec["nlist"] else ""
        recall = f", recall@10 {spec['recall_at_10']}" if spec["recall_at_10"] is not None else ""
        chosen = f"asked for {spec['requested']!r}" if spec["requested"] else "chosen by size"
        typer.echo(
            f"{row['collection']}: {spec['factory']} ({chosen}{probes}{recall}); {row['chunks']} chunks, "
            f"{row['vectors']} vectors, {spec['code_bytes']} code bytes per vector, {row['bytes_per_chunk']} bytes "
            f"per chunk on disk"
        )


@index_app.command("rebuild")
def index_rebuild(
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    factory: Annotated[
        str | None,
        typer.Option(help="FAISS factory string (e.g. Flat, IVF4096,SQ8, IVF1024,PQ48); 'auto': chosen by size"),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(help="text file of real questions, one per line, to calibrate recall on (default: stand-ins)"),
    ] = None,
) -> None:
    """Re-train a collection's vector index from the vectors it holds, or rebuild it as another type."""
    _quiet_libraries()
    settings = settings_from(store, collection=collection)
    questions = [line.strip() for line in queries.read_text(encoding="utf-8").splitlines()] if queries else []
    with _open_store(settings) as opened:
        try:
            spec = opened.rebuild_index(settings.collection, factory, [q for q in questions if q])
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--factory") from exc
    on = f" on {spec.calibration}" if spec.calibration else ""
    recall = f", recall@10 {spec.recall_at_10}{on} against exact search" if spec.recall_at_10 is not None else ""
    probes = f", nprobe {spec.nprobe} of {spec.nlist} lists" if spec.nlist else ""
    typer.echo(f"{settings.collection}: {spec.factory} over {spec.design_vectors} vectors{probes}{recall}")


def reader_for(reader: str | None, generator: str | None) -> str | None:
    """Naming a generator means the generative reader, unless a reader is named too."""
    return reader or ("generative" if generator else None)


train_app = typer.Typer(help="Train models from labelled data.", no_args_is_help=True, add_completion=False)
app.add_typer(train_app, name="train")


@train_app.command("reader")
def train_reader_command(
    data: Annotated[list[Path], typer.Option("--data", help="SQuAD-format file (v1.1, or v2.0); repeatable")],
    base: Annotated[str, typer.Option(help="base encoder: packaged name, folder, 'shipped' (the shipped reader)")] = (
        "all-MiniLM-L6-v2"
    ),
    out: Annotated[Path, typer.Option(help="output model folder")] = Path("runs/reader"),
    epochs: Annotated[float, typer.Option(help="passes over the training windows")] = 2.0,
    max_seq_len: Annotated[int, typer.Option(help="tokens per question + passage window")] = 256,
    stride: Annotated[int, typer.Option(help="tokens shared by consecutive windows of a long passage")] = 128,
    batch_size: Annotated[int, typer.Option(help="windows per step")] = 16,
    lr: Annotated[float, typer.Option(help="peak learning rate (linear warm-up and decay)")] = 5e-5,
    seed: Annotated[int, typer.Option(help="seed of the weights' init, data order and validation split")] = 13,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in --out")] = False,
    split_file: Annotated[
        Path | None, typer.Option(help="article split file; its --exclude-split articles are never read")
    ] = None,
    exclude_split: Annotated[str, typer.Option(help="the split never trained on")] = "test",
    validation_fraction: Annotated[float, typer.Option(help="share of questions held out (whole articles)")] = 0.1,
    save_steps: Annotated[int, typer.Option(help="steps between resumable checkpoints")] = 200,
) -> None:
    """Fine-tune an extractive reader on SQuAD-format files; writes a model folder with reader.json."""
    _quiet_libraries()
    from index.embedder import resolve_model_path
    from rag.errors import RagError
    from rag.readers import resolve_reader_model
    from reader.errors import ReaderError
    from reader.training import TrainConfig, train_reader

    try:
        path = str(resolve_reader_model(None)) if base == "shipped" else resolve_model_path(base)
        config = TrainConfig(
            data=tuple(data),
            base=path,
            out=out,
            epochs=epochs,
            max_seq_len=max_seq_len,
            stride=stride,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            resume=resume,
            split_file=split_file,
            exclude_split=exclude_split,
            validation_fraction=validation_fraction,
            save_steps=save_steps,
            base_label=base,
        )
        manifest = train_reader(config, echo=typer.echo)
    except (ReaderError, RagError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(code=2) from exc
    validation = manifest["validation"]
    summary = ", ".join(f"{k} {v:.3g}" for k, v in validation.items() if isinstance(v, float))
    typer.echo(f"saved {out} ({manifest['steps']} steps, {manifest['wall_seconds']:.0f} s); validation: {summary}")


from eval.cli import eval_app  # noqa: E402 - eval imports rag, so the sub-app joins at the end

app.add_typer(eval_app, name="eval", help="Offline evaluation runs")


@app.command()
def serve(
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the store over HTTP: OpenAI-compatible chat, the QA API, uploads and a web chat page at /."""
    _quiet_libraries()
    import uvicorn

    from rag.api import RAG
    from rag.service import ServiceSettings, create_app

    settings = settings_from(store, collection=collection)
    qa = RAG.open(settings=settings)
    try:
        uvicorn.run(create_app(qa, ServiceSettings()), host=host, port=port)
    finally:
        qa.close()


EXIT_FOUND_PROBLEM, EXIT_BAD_INPUT, EXIT_STORE = 1, 2, 3


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error")] = False,
) -> None:
    global _debug
    _debug = debug


_debug = False


def main() -> None:
    """The `rag` command: an error of ours is one red line and a documented exit code; --debug adds the traceback."""
    try:
        app()
    except Exception as exc:
        code = _exit_code(exc)
        if code is None or _debug:
            raise
        message = _one_line(exc)
        typer.secho(f"error: {message}", fg="red", err=True)
        raise SystemExit(code) from None


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # settings from options or RAG_* variables
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _exit_code(exc: Exception) -> int | None:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from eval.errors import EvalError
    from index.errors import StoreError
    from ingest.errors import IngestError
    from rag.errors import RagError
    from reader.errors import ReaderError

    if isinstance(exc, (StoreError, SQLAlchemyError, OSError)):  # the database or the store folder
        return EXIT_STORE
    if isinstance(exc, (RagError, ReaderError, EvalError, IngestError, ValidationError)):
        return EXIT_BAD_INPUT
    return None


if __name__ == "__main__":
    main()
