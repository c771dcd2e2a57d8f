# Sourced by bench/gpu_check.sh and bench/gpu_campaign.sh on the GPU machine, which has Python with torch but not
# fastai: `gpu_env PYTHON SITE` installs the wheels in .gpu/wheels (filled by tools/gpu_wheels.sh) offline, without
# dependencies, into SITE, puts SITE first on PYTHONPATH and PATH, and points ALLCONV_CIFAR10_JPG at the carried
# CIFAR-10 JPEGs unless it is set. Returns non-zero, saying why, when there is nothing to install or installing fails.
gpu_env() {
  local py="$1" site="$2" wheels
  shopt -s nullglob
  wheels=(.gpu/wheels/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} = 0 ]; then
    echo "error: no wheels in .gpu/wheels. Fix: run bash tools/gpu_wheels.sh on a machine with PyPI first." >&2; return 2
  fi
  echo "== installing ${#wheels[@]} wheels into $site"
  if "$py" -m pip --version >/dev/null 2>&1; then
    "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$site" --upgrade "${wheels[@]}" \
      || { echo "error: installing .gpu/wheels failed" >&2; return 1; }
  else   # no pip: a wheel is a zip of the files that belong in site-packages
    for w in "${wheels[@]}"; do "$py" -m zipfile -e "$w" "$site" || { echo "error: unpacking $w failed" >&2; return 1; }; done
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$site/bin:$PATH"
  if [ -z "${ALLCONV_CIFAR10_JPG:-}" ] && [ -e .gpu/data/cifar10-jpg-train.tar.gz ]; then
    export ALLCONV_CIFAR10_JPG="$PWD/.gpu/data/cifar10-jpg-train.tar.gz"
  fi
}
