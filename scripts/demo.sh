#!/usr/bin/env bash
# The quick-start demo: the whole pipeline on the bundled sample, on the embedded engine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=s3split-out/orders
rm -rf "$out"
echo "\$ s3split run samples/orders.csv --out $out --chunk-size 32KiB --lanes 2"
.venv/bin/s3split run samples/orders.csv --out "$out" --chunk-size 32KiB --lanes 2
echo
echo "chunks:  $(ls "$out"/chunks/part-*.csv | wc -l) files in $out/chunks/"
echo "results: $(ls "$out"/results/*.jsonl | wc -l) files in $out/results/, first record:"
head -n 1 "$out/results/part-00000.jsonl"
