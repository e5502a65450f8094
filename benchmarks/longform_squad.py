"""Long-form QA records from the SQuAD v1.1 dev `train` articles of dev-split.json: each reference is the
sentence of the context that holds a gold answer, so `rag eval jsonl` scores sentence-style answers.

    .venv/bin/python benchmarks/longform_squad.py /tmp/squad-train-sentences.jsonl
    RAG_ANSWER_STYLE=sentence HF_HUB_OFFLINE=1 .venv/bin/rag eval jsonl --data /tmp/squad-train-sentences.jsonl \\
        --store /tmp/lf-store --reader generative --limit 50 --seed 0
    (and --generator smollm2-135m-instruct; and --reader extractive)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from index.sentences import sentence_around

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad"


def records(squad_file: Path, split_file: Path) -> list[dict[str, object]]:
    """One record per question of the split's `train` articles: {id, question, answers (sentences), context, source}."""
    train = set(json.loads(split_file.read_text(encoding="utf-8"))["train"])
    out: list[dict[str, object]] = []
    for article in json.loads(squad_file.read_text(encoding="utf-8"))["data"]:
        if article["title"] not in train:
            continue
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                sentences: list[str] = []
                for answer in qa["answers"]:
                    start = answer["answer_start"]
                    begin, end = sentence_around(context, start, start + len(answer["text"]))
                    if (sentence := context[begin:end].strip()) not in sentences:
                        sentences.append(sentence)
                out.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "answers": sentences,
                        "context": context,
                        "source": article["title"],
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSONL file to write")
    parser.add_argument("--squad", type=Path, default=DATA / "dev-v1.1.json")
    parser.add_argument("--split-file", type=Path, default=DATA / "dev-split.json")
    args = parser.parse_args()
    rows = records(args.squad, args.split_file)
    with args.out.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"{len(rows)} records -> {args.out}")


if __name__ == "__main__":
    main()
