#!/usr/bin/env bash
# Continue a campaign plan on a GPU machine for a fixed time and pack the runs it filed, to bring them back:
#
#   bash tools/gpu_wheels.sh                              # first, on a machine with PyPI: fills .gpu/ (wheels + JPEGs)
#   bash bench/gpu_campaign.sh --minutes 6 --out DIR      # on the GPU machine (Python with torch, without fastai)
#   bash bench/gpu_campaign.sh --unpack DIR               # back here: the filed runs into bench/results/PLAN/
#   bash bench/gpu_campaign.sh --dry-run --plan P --results R --out DIR   # on this machine, in the current environment
#
# Options: --plan (default table3-gpu: bench/plans/table3-gpu.py, or a plan's .py file), --minutes (counted from the
# script's start, installing and loading included; training ends by then, and filing the run that finishes and packing
# follow, so give the machine's command a few minutes more; default 6), --results (default bench/results), --work
# (default runs/campaign).
# The plan resumes where the filed runs in RESULTS/PLAN (committed, so carried with the tree) leave off. Each run
# filed by this call is packed into DIR/filed.tar.N parts of at most 15 MiB, with the campaign's log in DIR/campaign.log.
# A run still training at the end is not packed: it starts again next time.
set -uo pipefail
T0=$(date +%s)   # the deadline counts from here: installing, loading the data and filing are inside it
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }   # paths given relative to the caller's folder
DRY=0; UNPACK=; PLAN=table3-gpu; MINUTES=6; RESULTS=bench/results; WORK=runs/campaign
OUT_DIR="${OUT:-runs/gpu-campaign}"   # parts to carry back, not to commit: runs/ is ignored
SITE=${GPU_CHECK_SITE:-/tmp/allconv-gpu-site}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; shift; continue ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    --unpack|--plan|--minutes|--results|--work|--out)
      if [ $# -lt 2 ]; then echo "error: $1 needs a value. Fix: see bash bench/gpu_campaign.sh --help." >&2; exit 2; fi ;;
    *) echo "error: unknown option $1. Fix: see bash bench/gpu_campaign.sh --help." >&2; exit 2 ;;
  esac
  case "$1" in
    --unpack) UNPACK=$(abs "$2") ;;
    --plan) case "$2" in */*|*.py) PLAN=$(abs "$2") ;; *) PLAN="$2" ;; esac ;;
    --minutes) MINUTES="$2" ;;
    --results) RESULTS=$(abs "$2") ;;
    --work) WORK=$(abs "$2") ;;
    --out) OUT_DIR=$(abs "$2") ;;
  esac
  shift 2
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ -n "$UNPACK" ]; then   # back on this machine: restore the packed run folders under RESULTS
  shopt -s nullglob; parts=("$UNPACK"/filed.tar.*); shopt -u nullglob
  if [ ${#parts[@]} = 0 ]; then echo "error: no filed.tar.* parts in $UNPACK. Fix: pass the --out folder of a GPU run." >&2; exit 2; fi
  mkdir -p "$RESULTS"
  cat "${parts[@]}" | tar -x -C "$RESULTS" || { echo "error: the parts in $UNPACK do not make a whole archive" >&2; exit 1; }
  echo "== restored into $RESULTS:"
  cat "${parts[@]}" | tar -t | grep '/metrics.json$' | sed 's|/metrics.json$||'
  echo "Next: allconv-campaign PLAN --report, then commit RESULTS/PLAN."
  exit 0
fi

if ! [[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "error: --minutes $MINUTES is not a number of minutes. Fix: e.g. --minutes 6." >&2; exit 2
fi
UNTIL=$(date -d "@$(awk -v t="$T0" -v m="$MINUTES" 'BEGIN{printf "%d", t + 60*m}')" --iso-8601=seconds)
mkdir -p "$OUT_DIR"
if [ "$DRY" = 0 ]; then
  source bench/gpu_env.sh
  gpu_env "$PY" "$SITE" || exit $?
fi
export MPLBACKEND=Agg PYTHONHASHSEED=0
NAME=$("$PY" -c "import sys; from allconv_fastai.campaign import load_plan; print(load_plan(sys.argv[1]).name)" "$PLAN") \
  || { echo "error: cannot load the plan $PLAN (see above)" >&2; exit 1; }
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (training on the CPU)')"
MARK=$(mktemp); touch "$MARK"; sleep 1   # runs filed after this are the ones to pack
echo "== allconv-campaign $PLAN until $UNTIL: results in $RESULTS/$NAME"
PYTHONUNBUFFERED=1 "$PY" -m allconv_fastai.campaign "$PLAN" --results "$RESULTS" --work "$WORK" --until "$UNTIL" 2>&1 \
  | tee "$OUT_DIR/campaign.log"
rc=$?
# finished filings only: a run being filed is written to a hidden .RUN.tmp folder first, then renamed
mapfile -t filed < <(cd "$RESULTS" && find "$NAME" -name metrics.json -newer "$MARK" -not -path '*/.*' -printf '%h\n' | sort)
rm -f "$MARK"
echo "== $((${#filed[@]})) run(s) filed by this call"
rm -f "$OUT_DIR"/filed.tar.*   # parts of an earlier call would be joined to these
if [ ${#filed[@]} -gt 0 ]; then
  tar -c -C "$RESULTS" "${filed[@]}" | split -b 15m -d -a 2 - "$OUT_DIR/filed.tar."
  st=("${PIPESTATUS[@]}")
  if [ "${st[0]}" != 0 ] || [ "${st[1]}" != 0 ]; then echo "error: packing the filed runs failed (tar ${st[0]}, split ${st[1]})" >&2; exit 1; fi
  printf '%s\n' "${filed[@]}"
  ls -l "$OUT_DIR"
fi
exit $rc
