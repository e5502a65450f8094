"""Answer quality of `rag serve` over the txtai docs: repeated 8-word runs, support by the cited passage, latency.

    .venv/bin/python benchmarks/chat_quality.py --url http://127.0.0.1:8000 [--model default] [--out rows.json]

Asks each question in QUESTIONS once, one at a time, as a non-streamed /v1/chat/completions request (timeout
120 s each), and only talks to --url. The questions are our own, written against the txtai documentation
(the Markdown under data/docs/txtai_docs); each one's answer is stated in those pages.

Per answer:
- repeats: some run of 8 consecutive word tokens (lowercased `\\w+`) occurs twice or more in the answer.
- abstained: the answer declines ("I don't know...", "I cannot answer..."); counted on its own.
- supported: the answer abstained, or at least 80% of its word tokens (lowercased `\\w+`, after dropping
  citation markers such as "[2]") occur in the text of the passage(s) it cites, i.e. the entries of the
  response's `sources` that carry a `highlight` (the cited span). An answer that cites nothing is unsupported.
Latency is wall time per request; p50, p95 and mean are over the answered questions. Errors are non-200
replies, transport failures and malformed bodies.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from chat_load import percentile  # the sibling benchmark script

QUESTIONS: tuple[str, ...] = (
    # how-to
    "How do I create an embeddings index in txtai?",
    "How do I install txtai?",
    "How do I install the txtai API extras?",
    "How do I save an embeddings index?",
    "How do I load a saved embeddings index?",
    "How do I remove content from an embeddings index?",
    "How do I start the txtai API service?",
    "How do I enable the OpenAI-compatible API?",
    "How do I enable Model Context Protocol (MCP) requests in the API?",
    "How do I run a similarity search with SQL in txtai?",
    "How do I enable hybrid search?",
    "How do I track the progress of an embeddings.index call?",
    "How do I fix the error 'no such function: json_extract'?",
    "How do I schedule a workflow to run on a repeating basis?",
    "How do I install a CPU-only version of txtai?",
    "How do I install txtai with conda?",
    "How do I translate text with the Translation pipeline?",
    # factual
    "Which database does txtai use to store content by default?",
    "What is the default ANN backend in txtai?",
    "Which Python version does txtai require?",
    "What does the upsert method do?",
    "What is the default port for the txtai API?",
    "How is the API token sent with each request?",
    "Which vector model does txtai use by default?",
    "What does the keyword setting create?",
    "What is the default graph backend?",
    "What is the default batch query size for the graph?",
    "When is a distributed embeddings cluster recommended?",
    "How many languages does the Translation pipeline support?",
    "Which model is recommended for summarization?",
    "What does the RAG pipeline join together?",
    "Which observability tool does txtai integrate with?",
    "What is the default number of trees for an annoy index?",
    "Which Docker images are available for txtai?",
    "What are workflows in txtai?",
)

NGRAM = 8
SUPPORT_THRESHOLD = 0.8
TIMEOUT_S = 120.0

_TOKEN = re.compile(r"\w+")
_MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_ABSTAIN = re.compile(
    r"\bi (?:do not|don't|cannot|can't) (?:know|answer|find|say)\b|\bno (?:answer|information)\b",
    re.IGNORECASE,
)


@dataclass
class Row:
    question: str
    answer: str = ""
    repeats: bool = False
    supported: bool = False
    abstained: bool = False
    support: float = 0.0
    latency: float = 0.0
    cited: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def repeats_ngram(text: str, n: int = NGRAM) -> bool:
    """True when some run of n consecutive word tokens occurs twice or more."""
    words = tokens(text)
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return any(count > 1 for count in grams.values())


def abstains(text: str) -> bool:
    return bool(_ABSTAIN.search(text.replace("\u2019", "'")))


def support_ratio(answer: str, passages: list[str]) -> float:
    """Share of the answer's word tokens that occur in the cited passages' text."""
    words = tokens(_MARKER.sub(" ", answer))
    if not words or not passages:
        return 0.0
    vocabulary = set(tokens(" ".join(passages)))
    return sum(word in vocabulary for word in words) / len(words)


def cited_sources(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in sources if s.get("highlight")]


def ask(http: httpx.Client, args: argparse.Namespace, question: str) -> Row:
    """One non-streamed question, scored."""
    body: dict[str, Any] = {"model": args.model, "messages": [{"role": "user", "content": question}], "stream": False}
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    row = Row(question)
    started = time.perf_counter()
    try:
        response = http.post(f"{args.url}/v1/chat/completions", json=body)
        row.latency = time.perf_counter() - started
        if response.status_code != 200:
            row.error = f"HTTP {response.status_code}: {response.text[:300]}"
            return row
        payload = response.json()
        row.answer = payload["choices"][0]["message"]["content"] or ""
        sources = payload.get("sources") or []
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        row.latency = time.perf_counter() - started
        row.error = f"{type(exc).__name__}: {exc}"
        return row
    cited = cited_sources(sources)
    row.cited = [
        {
            "number": s.get("number"),
            "source": s.get("source"),
            "title": s.get("title"),
            "quote": s["text"][s["highlight"]["start"] : s["highlight"]["end"]],
        }
        for s in cited
    ]
    row.repeats = repeats_ngram(row.answer)
    row.abstained = abstains(row.answer)
    row.support = round(support_ratio(row.answer, [s.get("text", "") for s in cited]), 3)
    row.supported = row.abstained or row.support >= SUPPORT_THRESHOLD
    return row


def summarize(rows: list[Row]) -> dict[str, Any]:
    answered = [r for r in rows if r.error is None]
    latencies = [r.latency for r in answered]
    return {
        "questions": len(rows),
        "answered": len(answered),
        "errors": len(rows) - len(answered),
        "repeats_8gram": sum(r.repeats for r in answered),
        "supported": sum(r.supported for r in answered),
        "abstained": sum(r.abstained for r in answered),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p95_s": round(percentile(latencies, 95), 3),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="default", help="the collection to ask")
    parser.add_argument("--api-key", default=None, help="API key, when the server has RAG_API_KEYS set")
    parser.add_argument("--max-tokens", type=int, default=None, help="max_tokens per answer (server default if unset)")
    parser.add_argument("--out", default=None, help="write per-question rows and the summary to this JSON file")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    rows: list[Row] = []
    with httpx.Client(headers=headers, timeout=TIMEOUT_S) as http:
        for number, question in enumerate(QUESTIONS, start=1):
            row = ask(http, args, question)
            rows.append(row)
            flag = "ERROR" if row.error else ("abstain" if row.abstained else f"support {row.support:.2f}")
            print(f"[{number:2}/{len(QUESTIONS)}] {row.latency:6.2f} s  {flag:13}  {question}", flush=True)

    summary = summarize(rows)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"summary": summary, "rows": [asdict(r) for r in rows]}, handle, indent=2)
    print()
    print(f"{'questions':24} {summary['questions']}")
    print(f"{'errors':24} {summary['errors']}")
    print(f"{'repeat an 8-word run':24} {summary['repeats_8gram']}")
    print(f"{'supported (>= 80%)':24} {summary['supported']}  (abstentions included)")
    print(f"{'abstained':24} {summary['abstained']}")
    p50, p95, mean = summary["latency_p50_s"], summary["latency_p95_s"], summary["latency_mean_s"]
    print(f"{'latency':24} p50 {p50:.2f} s  p95 {p95:.2f} s  mean {mean:.2f} s")
    for row in rows:
        if row.error:
            print(f"  error: {row.question}: {row.error}")


if __name__ == "__main__":
    main()
