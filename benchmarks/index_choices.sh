#!/usr/bin/env bash
# SQuAD v1.1 dev retrieval with each index type: the exact default, then the same vectors rebuilt as IVF with
# 8-bit codes (nprobe calibrated on stand-in queries, as an automatic rebuild does), flat 8-bit codes, and
# IVF with 48-byte product codes. Builds the dataset's store once (about a minute), copies it per type.
#   bash benchmarks/index_choices.sh [WORKDIR]    figures: WORKDIR/<type>.txt
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/ragkit-index-choices}"
data=../shared/data/squad/dev-v1.1.json
export HF_HUB_OFFLINE=1
rag=.venv/bin/rag
mkdir -p "$work"
# Builds (or reuses) the dataset's store under $work/exact/eval-stores/.
$rag eval squad --data "$data" --store "$work/exact" --retrieval-only --no-progress --run-id all >"$work/exact.txt"
$rag eval squad --data "$data" --store "$work/exact" --retrieval-only --no-progress --split test --run-id test \
  >>"$work/exact.txt"
for factory in "IVF64,SQ8" "SQ8" "IVF64,PQ48"; do
  name="${factory//,/-}"
  rm -rf "${work:?}/$name" && mkdir "$work/$name" && cp -r "$work/exact/eval-stores" "$work/$name/"
  dataset_store="$(ls -d "$work/$name"/eval-stores/*/)"
  $rag index rebuild --store "$dataset_store" --factory "$factory" >"$work/$name.txt"
  $rag eval squad --data "$data" --store "$work/$name" --retrieval-only --no-progress --run-id all >>"$work/$name.txt"
  $rag eval squad --data "$data" --store "$work/$name" --retrieval-only --no-progress --split test --run-id test \
    >>"$work/$name.txt"
done
grep -H -E "^(default:|recall@1 |recall@5 |mrr@10|questions )" "$work"/*.txt
