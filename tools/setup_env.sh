#!/usr/bin/env bash
# Create (or verify) the project's virtual environment with everything mmdist needs:
# torch + torchvision, mmcv 2.1.0 with compiled ops (built from the PyPI source release
# once per mmcv/torch/python version and cached outside the repo), mmengine, mmdet,
# mmsegmentation, mmpretrain and `pip install -e .`.
#
# Idempotent: when nothing relevant changed, a second run only verifies the imports (seconds).
#
# Environment variables (all optional):
#   MMDIST_VENV          venv location                      (default: <repo>/.venv)
#   MMDIST_CACHE         cache for built wheels             (default: ~/.cache/mmdist)
#   PYTHON               interpreter that creates the venv  (default: python3)
#   TORCH_VERSION        torch version                      (default: 2.14.1)
#   TORCHVISION_VERSION  torchvision version                (default: 0.29.1)
#   FORCE_CUDA=1         build mmcv's CUDA ops (needs nvcc; cached under a separate key)
#   MAX_JOBS             parallel compile jobs for mmcv     (default: number of cores)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDIST_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
CACHE=${MMDIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdist}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
MMSEG_VERSION=1.2.2
MMPRETRAIN_VERSION=1.2.0
CONSTRAINTS=$ROOT/requirements/constraints.txt

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

# Everything that decides the environment's content goes into the stamp key.
stamp_key() {
  {
    echo "$TORCH_VERSION $TORCHVISION_VERSION $MMCV_VERSION ${FORCE_CUDA:-0}"
    echo "$MMENGINE_VERSION $MMDET_VERSION $MMSEG_VERSION $MMPRETRAIN_VERSION"
    cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" "$ROOT"/requirements/*.txt
  } | sha256sum | cut -d' ' -f1
}

STAMP=$VENV/.mmdist-env-stamp
KEY=$(stamp_key)
CHECK_IMPORTS='import torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmpretrain, mmdist'

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] \
    && "$VENV/bin/python" -c "$CHECK_IMPORTS" 2>/dev/null; then
  log "environment in $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check)

log "installing build tools and torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" install -q -c "$CONSTRAINTS" wheel ninja 'numpy<2' \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
# mmcv compiles its CUDA ops when FORCE_CUDA=1 or when torch sees a GPU at build time.
OPS_KIND=$(FORCE_CUDA=${FORCE_CUDA:-0} "$PY" -c 'import os, torch
print("cuda" if os.environ["FORCE_CUDA"] == "1" or torch.cuda.is_available() else "cpu")')
# The torch version is part of the key: a wheel compiled against one torch fails to load
# (undefined symbols) under another, and pip's own cache does not know that.
WHEEL_DIR=$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PY_TAG-$OPS_KIND

if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  BUILD=$(mktemp -d "${TMPDIR:-/tmp}/mmdist-mmcv-build.XXXXXX")
  # mmcv 2.1.0's setup.py imports pkg_resources, which recent setuptools dropped, while
  # torch >= 2.9 asks for a recent setuptools: use an old one only while mmcv builds.
  SETUPTOOLS_SPEC="setuptools$("$PY" -c 'import importlib.metadata as m; print(next((r.split(";")[0].split("setuptools", 1)[1] for r in m.requires("torch") or [] if r.startswith("setuptools")), ""))')"
  restore_setuptools() {
    "${PIP[@]}" install -q -c "$CONSTRAINTS" "${SETUPTOOLS_SPEC}" || true
    rm -rf "$BUILD"
  }
  trap restore_setuptools EXIT
  "${PIP[@]}" install -q 'setuptools<70' 2>&1 \
    | { grep -v -e 'dependency resolver' -e 'requires setuptools' || true; }
  log "building mmcv $MMCV_VERSION ($OPS_KIND ops) from source for torch $TORCH_VERSION, $PY_TAG"
  log "this happens once per mmcv/torch/python version; expect 15-25 min on 2 cores"
  log "full build log: $BUILD/build.log"
  "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
  tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
  SRC=$BUILD/mmcv-$MMCV_VERSION
  # torch >= 2.x headers need C++20 (ATen: "C++20 or later compatible compiler is
  # required"); mmcv 2.1.0's setup.py hard-codes -std=c++17 for torch > 1.12.1.
  grep -q -- '-std=c++17' "$SRC/setup.py" || die "mmcv setup.py no longer contains -std=c++17; update setup_env.sh"
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  # Show ninja's [k/N] progress lines; everything goes to the log.
  # A failed build is reported below (no wheel in dist/), with the end of the log.
  MAX_JOBS=${MAX_JOBS:-$(nproc)} MMCV_WITH_OPS=1 \
    "${PIP[@]}" wheel -v --no-build-isolation --no-deps -w "$BUILD/dist" "$SRC" 2>&1 \
    | tee "$BUILD/build.log" \
    | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]' \
    | sed -u -E 's/^\s*(\[[0-9]+\/[0-9]+\]).*/  mmcv build \1/' || true
  ls "$BUILD"/dist/mmcv-*.whl >/dev/null 2>&1 || { tail -n 40 "$BUILD/build.log" >&2; die "mmcv build failed (log above)"; }
  mkdir -p "$WHEEL_DIR"
  # Copy then rename so that an interrupted copy never leaves a half-written wheel in the cache.
  for whl in "$BUILD"/dist/mmcv-*.whl; do
    cp "$whl" "$WHEEL_DIR/.$(basename "$whl").part"
    mv "$WHEEL_DIR/.$(basename "$whl").part" "$WHEEL_DIR/$(basename "$whl")"
  done
  log "cached $(ls "$WHEEL_DIR")"
  restore_setuptools
  trap - EXIT
fi

log "installing mmcv from $WHEEL_DIR and the OpenMMLab packages"
"${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps "$WHEEL_DIR"/mmcv-*.whl
"${PIP[@]}" install -q -c "$CONSTRAINTS" \
  "mmcv==$MMCV_VERSION" \
  "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" \
  "mmsegmentation==$MMSEG_VERSION" "mmpretrain==$MMPRETRAIN_VERSION" \
  --find-links "$WHEEL_DIR"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install -q -c "$CONSTRAINTS" --no-build-isolation -e "$ROOT"

log "verifying imports"
"$PY" -c "$CHECK_IMPORTS
import mmcv.ops
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__,
      '| mmseg', mmseg.__version__, '| mmpretrain', mmpretrain.__version__)"
echo "$KEY" > "$STAMP"
log "done: activate with 'source $VENV/bin/activate'"
