#!/usr/bin/env bash
# The GPU check of mmfocal's backbones (tools/analysis/gpu_check.py): environment, CUDA
# tests, convolution timings and the benchmark tables, within 7 minutes; logs in $OUT.
#
#   bash tools/analysis/gpu_check.sh wheels      here, with the package index: fetch the
#                                                wheels into .whl/ (ignored by git)
#   bash tools/analysis/gpu_check.sh             on a GPU machine with torch but no
#                                                OpenMMLab packages: install .whl/, check
#   PYTHON=.venv/bin/python bash tools/analysis/gpu_check.sh --dry-run
#                                                the same on the CPU, tiny sizes
#
# On the lent H200 machine (Python 3.12, torch, numpy, no mmengine/mmcv/mmdet, no
# network) the device tool's call is
#   run(command="bash tools/analysis/gpu_check.sh", carry=[".whl"], timeout_s=540)
# with .whl/ in the checkout the tool sends and `/.whl/` in its .git/info/exclude. The
# check needs mmengine (BaseModule, weight init, logging), mmcv's Python layers
# (build_norm_layer, DropPath) and mmdet (the registry, Swin-T), all pure Python, and
# what they import that the machine lacks; mmcv comes without compiled operators
# (mmcv-lite): mmdet imports mmcv.ops, whose modules only look their kernels up in
# mmcv._ext at import, so a stand-in _ext whose kernels raise lets mmdet import; Swin-T
# and mmfocal's backbones use none of them.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
python=${PYTHON:-python3}
wheels=(mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0 addict==2.4.0 termcolor==3.3.0
        yapf==0.43.0 platformdirs==4.14.8 terminaltables==3.1.10 shapely==2.2.0
        pycocotools==2.0.11)

if [ "${1:-}" = wheels ]; then
  platforms=()
  for tag in manylinux_2_28 manylinux_2_24 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_x86_64")
  done
  exec "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${wheels[@]}"
fi

site=${SITE:-/tmp/mmfocal-gpu-site}
if [ -d .whl ]; then
  # the pure wheels, and the compiled ones built for this interpreter (cp312 on the device)
  tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  found=(.whl/*-none-any.whl .whl/*-"$tag"-*.whl)
  wanted=()
  for wheel in "${found[@]}"; do [ -f "$wheel" ] && wanted+=("$wheel"); done
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "${wanted[@]}" || { echo "gpu_check: installing .whl failed"; exit 1; }
  cat > "$site/mmcv/_ext.py" <<'EOF'
"""Stand-in for mmcv's compiled operators (mmcv-lite has none): every kernel raises."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)

    def kernel(*args, **kwargs):
        raise NotImplementedError(f'mmcv._ext.{name}: mmcv was installed without its ops')
    return kernel
EOF
  export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec "$python" tools/analysis/gpu_check.py "$@"
