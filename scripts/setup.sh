#!/usr/bin/env bash
# Set up facecast in ./.venv (idempotent). Installs a CPU build of torch first so that pip never
# pulls a multi-GB CUDA build onto a machine without a GPU; on a GPU machine install the CUDA
# build of torch yourself before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # A local CPU wheel (as on this project's machines) or PyPI's.
  .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.4"
fi
.venv/bin/python -m pip install -q -e ".[test,eval]"
.venv/bin/python -c "import facecast, torch; print('facecast ready: torch', torch.__version__)"
