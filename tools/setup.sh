#!/usr/bin/env bash
# Create .venv and install allconv_fastai with its dev tools. torch/torchvision are pinned here (not in the
# package's own ranges) so that pip on the project's machines takes them from the local wheel cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check \
    "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}" -e ".[dev]" 2>&1 \
    | grep -v "is ignored" || true
.venv/bin/python -c "import allconv_fastai, torch, fastai; print(f'allconv_fastai {allconv_fastai.__version__}, torch {torch.__version__}, fastai {fastai.__version__}')"
