#!/usr/bin/env bash
# Set up and run every check: notebooks and library in step, notebook tests, docs build, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# Headless Chromium for the docs test (Debian's packages; root on the project's machines).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: could not install chromium; the browser test of the docs will be skipped" >&2
  fi
fi
if [ "${CI:-}" = true ] && ! command -v chromium >/dev/null; then
  echo "CI needs Debian's chromium for the docs test: apt-get install chromium chromium-driver" >&2; exit 1
fi
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg PYTHONHASHSEED=0
start=$(date +%s)
echo "== nbdev-export / nbdev-clean leave the tree unchanged"
before=$(git status --porcelain)
nbdev-export && nbdev-clean
after=$(git status --porcelain)
if [ "$before" != "$after" ]; then
  echo "nbdev-export or nbdev-clean changed files: run them and commit the result." >&2
  git status --porcelain >&2; git diff --stat >&2; exit 1
fi
echo "== nbdev-test (notebooks)"
# Each notebook in a process of its own, two at a time, one thread each (on 2 cores, more threads only fight each other).
# In one shared pool of workers, a notebook could pass only because another one, run before it in the same worker, had
# imported what it uses (a fastai patch such as Learner.no_bar); on its own it passes or fails the same every time.
python -c "from nbdev.doclinks import nbglob; print('\n'.join(map(str, sorted(nbglob()))))" \
  | OMP_NUM_THREADS=1 xargs -r -d "\n" -P 2 -n 1 nbdev-test --timing
echo "== pytest"
# two test files at a time, one thread each (each file's tests in order, in one worker)
OMP_NUM_THREADS=1 pytest -q -p no:cacheprovider -n 2 --dist loadfile tests
echo "== all checks passed in $(( $(date +%s) - start ))s"
