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
.venv/bin/python -m pip install -q -e ".[test,eval,serve,ray]"
# The pipecat extra in a second step: pipecat needs protobuf>=5.29 while mediapipe 0.10.21 declares
# <5 (it runs on 6: the tests prove it), which pip's resolver cannot reconcile in one step. pip warns
# about the declared conflict; that warning is expected. Keep this spec equal to pyproject's extra
# (aiortc: pipecat's local WebRTC transport, for examples/pipecat_avatar_bot.py).
.venv/bin/python -m pip install -q "pipecat-ai>=1.14,<2" "aiortc>=1.14,<2" 2>&1 | grep -v "dependency resolver\|protobuf" || true
# Browser tests (facecast serve's page) drive Debian's Chromium through Playwright; install it where
# we can (root with apt); elsewhere those tests skip, and say why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)
fi
.venv/bin/python -c "import facecast, torch; print('facecast ready: torch', torch.__version__)"
