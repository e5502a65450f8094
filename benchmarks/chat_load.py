"""Load test for `rag serve`: N clients stream /v1/chat/completions for T seconds; TTFT, latency and errors.

    .venv/bin/python benchmarks/chat_load.py --url http://127.0.0.1:8000 --clients 4 --seconds 30 [--key KEY]

Each client asks questions in turn, one at a time, honouring Retry-After on 429 (as a polite client would;
--no-backoff retries at once). Time to first token is measured to the first chunk with content.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

QUESTIONS = (
    "What is txtai?",
    "How do I create an embeddings index?",
    "Which databases can store the content?",
    "How does hybrid search work?",
    "What is a pipeline?",
    "How do I run txtai as an API service?",
)


@dataclass
class Results:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def one_request(http: httpx.AsyncClient, args: argparse.Namespace, question: str, results: Results) -> float:
    """One streamed question; returns seconds to wait before the next (Retry-After on 429)."""
    body = {
        "model": args.model,
        "messages": [{"role": "user", "content": question}],
        "stream": True,
        "max_tokens": args.max_tokens,
    }
    started = time.perf_counter()
    first = None
    try:
        async with http.stream("POST", f"{args.url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                results.statuses[str(response.status_code)] += 1
                retry = float(response.headers.get("Retry-After", 1))
                return 0.0 if args.no_backoff else min(retry, 5.0)
            failed = False
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                failed |= "error" in chunk
                choices = chunk.get("choices") or [{}]
                if first is None and choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - started
    except httpx.HTTPError as exc:
        results.statuses[type(exc).__name__] += 1
        return 0.5
    if failed:
        results.statuses["stream error"] += 1
        return 0.0
    results.statuses["200"] += 1
    results.total.append(time.perf_counter() - started)
    if first is not None:
        results.ttft.append(first)
    return 0.0


async def client(index: int, args: argparse.Namespace, deadline: float, results: Results) -> None:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    async with httpx.AsyncClient(headers=headers, timeout=args.timeout) as http:
        turn = index
        while time.perf_counter() < deadline:
            wait = await one_request(http, args, QUESTIONS[turn % len(QUESTIONS)], results)
            turn += 1
            if wait:
                await asyncio.sleep(wait)


async def run(args: argparse.Namespace) -> Results:
    results = Results()
    deadline = time.perf_counter() + args.seconds
    await asyncio.gather(*(client(i, args, deadline, results) for i in range(args.clients)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--key", default=None, help="API key, when the server has RAG_API_KEYS set")
    parser.add_argument("--model", default="default", help="the collection to ask")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--no-backoff", action="store_true", help="retry at once after a 429")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")

    started = time.perf_counter()
    results = asyncio.run(run(args))
    elapsed = time.perf_counter() - started
    ok = results.statuses["200"]
    print(f"clients {args.clients}, {elapsed:.0f} s: {ok} answered ({ok / elapsed:.2f}/s)")
    for name, values in (("time to first token", results.ttft), ("total latency", results.total)):
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"  {name:20} p50 {p50:6.2f} s  p95 {p95:6.2f} s  (n={len(values)})")
    errors = {status: n for status, n in sorted(results.statuses.items()) if status != "200"}
    print(f"  errors by status     {errors or 'none'}")


if __name__ == "__main__":
    main()
