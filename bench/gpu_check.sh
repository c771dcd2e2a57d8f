#!/usr/bin/env bash
# One prepared GPU check (see bench/gpu_check.py): the CUDA tests, All-CNN-C on CIFAR-10 with the fast recipe, the C row
# of Table 3 and DenseNet-BC-100 speed and memory, within 8 minutes of wall clock.
#
#   bash tools/gpu_wheels.sh                 # first, on a machine with PyPI: fills .gpu/ (wheels + CIFAR-10 JPEGs)
#   bash bench/gpu_check.sh [--out DIR]      # then, on the GPU machine (Python with torch, without fastai)
#   bash bench/gpu_check.sh --dry-run --out DIR   # the same steps on this machine's CPU at toy size (current environment)
#
# Without --dry-run, the wheels in .gpu/wheels are installed (offline, no dependencies) into a folder of their own
# that PYTHONPATH puts first; the machine's torch and the rest are used as they are.
# Results go to --out DIR (default: $OUT if set, else bench/results/gpu-check).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
OUT_DIR="${OUT:-bench/results/gpu-check}"
LIMIT=${GPU_CHECK_LIMIT:-480}   # seconds for the Python script, all stages together
SITE=${GPU_CHECK_SITE:-/tmp/allconv-gpu-site}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    --out=*) OUT_DIR="${1#--out=}" ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1. Fix: use --dry-run and/or --out DIR." >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"

if [ "$DRY" = 0 ]; then
  source bench/gpu_env.sh
  gpu_env "$PY" "$SITE" || exit $?
  ARGS=()
else
  ARGS=(--dry-run)
fi
export MPLBACKEND=Agg PYTHONHASHSEED=0

echo "== versions"
"$PY" - <<'EOF' || { echo "error: the Python environment cannot import the project (see above)" >&2; exit 1; }
import platform, torch, torchvision, fastai, fastcore, allconv_fastai
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), torchvision "
      f"{torchvision.__version__}, fastai {fastai.__version__}, fastcore {fastcore.__version__}, allconv_fastai {allconv_fastai.__version__}")
print("GPU:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none (torch.cuda.is_available() is False)")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "CIFAR-10 JPEGs: ${ALLCONV_CIFAR10_JPG:-not set: searched for under shared/data, else the data stages are skipped}"
echo "== bench/gpu_check.py ${ARGS[*]} --out $OUT_DIR (limit ${LIMIT}s)"
start=$(date +%s)
timeout --signal=TERM --kill-after=20 "$LIMIT" "$PY" bench/gpu_check.py "${ARGS[@]}" --out "$OUT_DIR" \
  --minutes "$(awk "BEGIN{print ($LIMIT-25)/60}")"
rc=$?
chmod -R a+rX "$OUT_DIR" 2>/dev/null   # the atomic writes create private files
echo "== finished with status $rc in $(( $(date +%s) - start ))s; results in $OUT_DIR:"
ls -l "$OUT_DIR"
exit $rc
