#!/usr/bin/env bash
# Set up and run every check: notebooks and library in step, notebook tests, docs build, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
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
nbdev-test --n-workers 2 --timing
echo "== pytest"
pytest -q -p no:cacheprovider tests
echo "== all checks passed in $(( $(date +%s) - start ))s"
