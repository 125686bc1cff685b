#!/usr/bin/env bash
# Replays a fuzz target's checked-in corpus once: run_corpus.sh FUZZ_BINARY CORPUS_DIR.
# -runs=0 makes a libFuzzer binary execute the corpus and stop; the standalone main ignores it.
set -euo pipefail
binary="$1"
corpus="$2"
[ -d "$corpus" ] || { echo "no corpus directory $corpus"; exit 1; }
n=$(find -L "$corpus" -type f | wc -l)
[ "$n" -gt 0 ] || { echo "corpus $corpus is empty"; exit 1; }
echo "replaying $n inputs of $corpus"
exec "$binary" -runs=0 "$corpus"
