#!/usr/bin/env bash
# Install swin_dense and everything it needs into the active Python (3.11, Linux, CPU or CUDA).
#
#   bash tools/install.sh
#
# Steps (see README, "Install"):
#   1. setuptools >=77,<81 (torch 2.14 needs >=77.0.3; mmengine 0.10.7 needs pkg_resources, gone in 81).
#   2. torch/torchvision: an importable pair already installed is kept; otherwise torch==2.14.1
#      torchvision==0.29.1. Both are then pinned in a constraints file for every later step.
#   3. mmcv 2.1.0 with compiled ops, built from source (PyPI has no wheel), with the C++ standard that
#      the installed torch needs (C++17 up to torch 2.13, C++20 from 2.14) and CUDA ops where CUDA is
#      present. The wheel is cached under $SWIN_DENSE_CACHE keyed by mmcv, torch and CUDA version.
#   4. mmengine 0.10.7, mmdet 3.3.0, mmsegmentation 1.2.2 (+ ftfy, regex it imports), pycocotools, opencv.
#   5. this package in editable mode with its extras (pyproject.toml): tests (pytest and what the tests
#      compare against), serve (fastapi, uvicorn: tools/serve.py) and bench (timm, mmpretrain,
#      transformers 4.38.2, matplotlib: tools/benchmark.py) and deploy (onnx, onnxscript, onnxruntime:
#      tools/export_onnx.py) and instaboost (instaboostfast: the HTC++ configs' InstaBoost).
set -euo pipefail

PY=${PYTHON:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SWIN_DENSE_CACHE:-$HOME/.cache/swin_dense}
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off)
mkdir -p "$CACHE"

step() { echo "[install] $*"; }

step "setuptools >=77,<81, wheel, ninja"
"${PIP[@]}" "setuptools>=77,<81" wheel ninja

if "$PY" -c "import torch, torchvision" 2>/dev/null; then
  step "keeping installed torch/torchvision"
else
  step "installing torch==2.14.1 torchvision==0.29.1"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi

CONSTRAINTS="$CACHE/constraints-$($PY -c 'import torch; print(torch.__version__)').txt"
"$PY" - "$CONSTRAINTS" <<'PYEOF'
import sys
from importlib.metadata import version
pins = {name: version(name) for name in ('torch', 'torchvision')}
pins['setuptools'] = '>=77,<81'
with open(sys.argv[1], 'w') as f:
    for name, v in pins.items():
        f.write(f'{name}{v if v.startswith((">", "<")) else "==" + v}\n')
PYEOF
step "pinned: $(tr '\n' ' ' < "$CONSTRAINTS")"
PIP+=(-c "$CONSTRAINTS")

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  step "mmcv 2.1.0 with ops already installed"
else
  read -r TORCH_VER CXX_STD CUDA_TAG < <("$PY" - <<'PYEOF'
import torch
major, minor = (int(p) for p in torch.__version__.split('+')[0].split('.')[:2])
std = 'c++20' if (major, minor) >= (2, 14) else 'c++17'
cuda = f"cu{torch.version.cuda.replace('.', '')}" if torch.cuda.is_available() and torch.version.cuda else 'cpu'
print(torch.__version__.replace('+', '_'), std, cuda)
PYEOF
)
  WHEEL_DIR="$CACHE/wheels/mmcv-2.1.0-torch${TORCH_VER}-${CUDA_TAG}"
  if ! ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    if [ "$CUDA_TAG" != cpu ]; then
      # CUDA ops are compiled by nvcc against torch's CUDA runtime: the toolkit must be the same major.minor.
      TORCH_CUDA=$("$PY" -c 'import torch; print(torch.version.cuda)')
      NVCC_CUDA=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
      if [ "$NVCC_CUDA" != "$TORCH_CUDA" ]; then
        echo "[install] error: torch is built for CUDA $TORCH_CUDA, but nvcc is ${NVCC_CUDA:-not on PATH}: install the" \
             "CUDA $TORCH_CUDA toolkit and put its bin/ on PATH (or set CUDA_HOME), then run this again" >&2
        exit 1
      fi
    fi
    step "building mmcv 2.1.0 with ops (-std=$CXX_STD, $CUDA_TAG); about 10 min on 2 cores"
    BUILD=$(mktemp -d)
    "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation \
      -c "$CONSTRAINTS" -d "$BUILD" mmcv==2.1.0
    tar -xzf "$BUILD"/mmcv-2.1.0.tar.gz -C "$BUILD"
    sed -i "s/-std=c++1[47]/-std=$CXX_STD/g" "$BUILD"/mmcv-2.1.0/setup.py
    FORCE_CUDA=0; [ "$CUDA_TAG" != cpu ] && FORCE_CUDA=1
    CFLAGS="${CFLAGS:-} -g0" CXXFLAGS="${CXXFLAGS:-} -g0" MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
      -w "$BUILD/dist" "$BUILD/mmcv-2.1.0"
    mkdir -p "$WHEEL_DIR"
    mv "$BUILD"/dist/mmcv-2.1.0-*.whl "$WHEEL_DIR"/
    rm -rf "$BUILD"
  else
    step "using cached mmcv wheel from $WHEEL_DIR"
  fi
  "${PIP[@]}" "$WHEEL_DIR"/mmcv-2.1.0-*.whl
fi

step "OpenMMLab stack and this package with its tests, serve and bench extras"
"${PIP[@]}" -r "$ROOT/requirements.txt"
"${PIP[@]}" -e "$ROOT[tests,serve,bench,deploy,instaboost]"

step "checking the install"
"$PY" - <<'PYEOF'
from importlib.metadata import version
import setuptools, torch, mmcv, mmcv.ops, mmdet, mmseg, mmseg.utils, swin_dense, swin_dense.runtime  # noqa: F401
import fastapi, uvicorn, timm, mmpretrain, matplotlib, onnx, onnxruntime, instaboostfast  # noqa: F401  the extras
major = int(setuptools.__version__.split('.')[0])
assert 77 <= major < 81, f'setuptools {setuptools.__version__} is outside >=77,<81'
print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__,
      '| mmseg', mmseg.__version__, '| setuptools', setuptools.__version__, '| swin_dense', version('swin_dense'))
PYEOF
