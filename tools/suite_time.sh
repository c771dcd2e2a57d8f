#!/usr/bin/env bash
# The README's pytest command on two commits, one after the other, on this machine under whatever load it carries,
# each in a fresh clone that imports its own package (this checkout's .venv, the clone first on PYTHONPATH):
#
#   bash tools/suite_time.sh 342f6f0 HEAD      # before, after
#
# Prints each run's wall seconds, load average and pytest summary, and the after/before ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A wall
echo "CPU: $(.venv/bin/python -c 'from allconv_fastai.machine import cpu_model; print(cpu_model())'), $(nproc) cores"
# the clones live in a temporary folder, where `find_cifar10_jpg()` would not find the CIFAR-10 JPEGs this checkout finds:
# name them, so that both runs run the tests that need them, as CI does
jpg=$(.venv/bin/python -c 'from allconv_fastai.data.sources import find_cifar10_jpg as f; print(f() or "")')
export ALLCONV_CIFAR10_JPG=${ALLCONV_CIFAR10_JPG:-$jpg}
echo "CIFAR-10 JPEGs: ${ALLCONV_CIFAR10_JPG:-none}"
for rev in "$1" "${2:-HEAD}"; do
  d=$tmp/$rev; git clone -q "$root" "$d"; git -C "$d" checkout -q "$rev"
  echo "== $rev ($(git -C "$d" log --oneline -1 | cut -c1-70)); load $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"
  s=$(date +%s)
  (cd "$d" && PYTHONPATH=$d PATH=$root/.venv/bin:$PATH MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_NUM_THREADS=1 \
     pytest -q -p no:cacheprovider -n 2 --dist loadfile tests 2>&1 | tail -1)
  wall[$rev]=$(( $(date +%s) - s ))
  echo "   ${wall[$rev]} s; load $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"
done
python3 -c "import sys; a,b = map(int, sys.argv[1:]); print(f'after/before: {b/a:.3f} ({100*(1-b/a):.1f}% less)')" "${wall[$1]}" "${wall[${2:-HEAD}]}"
