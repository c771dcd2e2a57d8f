#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what the GPU machine lacks, for bench/gpu_check.sh to use there offline:
#   .gpu/wheels/  the wheels of fastai and of the packages it imports that the GPU machine does not have, plus this
#                 project built as a wheel
#   .gpu/data/    the CIFAR-10 training JPEGs (from $ALLCONV_CIFAR10_JPG, default ../shared/data/cifar10-jpg-train.tar.gz)
# Run it on a normal machine with access to PyPI, from anywhere:  bash tools/gpu_wheels.sh
#
# The GPU machine: Python 3.12, Linux x86_64, with torch 2.11, torchvision 0.26, accelerate 1.15, numpy, pandas,
# matplotlib, scikit-learn, safetensors, pillow, pyyaml, requests, packaging, psutil, pytest and hypothesis (and
# what they require), but without fastai. The list below is what `import fastai.vision.all, allconv_fastai` and
# bench/gpu_check.py (with tests/test_cuda.py) import beyond that, found by recording the modules those runs import
# (and checked by running them with every other package hidden):
#   fastai needs fastcore, fasttransform, fastprogress, fastdownload, plum-dispatch and cloudpickle at import;
#   fastprogress imports python-fasthtml, which imports starlette, anyio (+ sniffio), itsdangerous, python-multipart;
#   plum-dispatch imports beartype and rich (rich declares markdown-it-py + mdurl, shipped too: they are small).
# Versions are the ones this project is tested with. Not shipped: spacy (fastai lists it, but only fastai.text
# imports it; fastai.vision.all does not), and what fasthtml declares but never imports here (uvicorn, httpx2,
# oauthlib, beautifulsoup4). anyio is pinned to 4.9, which needs typing-extensions >= 4.5 (torch brings >= 4.10).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=.gpu/wheels
DATA=.gpu/data
TARGET=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform any)
PKGS=(
  fastai==2.8.12 fastcore==2.2.41 fasttransform==0.0.5 fastprogress==1.1.6 fastdownload==0.0.8 cloudpickle==3.1.3
  plum-dispatch==2.9.0 beartype==0.23.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2
  python-fasthtml==0.14.14 starlette==1.10.0 anyio==4.9.0 sniffio==1.3.1 itsdangerous==2.2.0 python-multipart==0.0.34
)

rm -rf "$WHEELS"; mkdir -p "$WHEELS" "$DATA"
echo "== downloading ${#PKGS[@]} wheels for CPython 3.12, Linux x86_64, into $WHEELS"
for p in "${PKGS[@]}"; do
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: "${TARGET[@]}" -d "$WHEELS" "$p" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }   # noise from pip configs that list absent indexes
done
echo "== building allconv_fastai as a wheel"
rm -rf build   # setuptools' staging folder: a module deleted since the last build would otherwise ship in the wheel
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" . 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
rm -rf build
n=$(ls "$WHEELS"/*.whl | wc -l)
if [ "$n" -ne $(( ${#PKGS[@]} + 1 )) ]; then echo "error: expected $(( ${#PKGS[@]} + 1 )) wheels, got $n" >&2; exit 1; fi

SRC=${ALLCONV_CIFAR10_JPG:-../shared/data/cifar10-jpg-train.tar.gz}
if [ -f "$SRC" ]; then
  echo "== copying the CIFAR-10 JPEGs from $SRC"
  cp "$SRC" "$DATA/cifar10-jpg-train.tar.gz"
elif [ -d "$SRC" ]; then
  echo "== packing the CIFAR-10 JPEG folder $SRC"
  tar -czf "$DATA/cifar10-jpg-train.tar.gz" -C "$(dirname "$SRC")" "$(basename "$SRC")"
else
  echo "warning: no CIFAR-10 JPEGs at $SRC (set ALLCONV_CIFAR10_JPG): the GPU check will skip its CIFAR-10 stages" >&2
fi

ls -l "$WHEELS" "$DATA"
kib=$(du -sk .gpu | cut -f1)
echo "== .gpu/ holds $(( kib / 1024 )) MiB ($kib KiB)"
if [ "$kib" -gt $(( 48 * 1024 )) ]; then
  echo "warning: .gpu/ is over 48 MiB; with the working tree it may not fit a 64 MiB transfer" >&2
fi
