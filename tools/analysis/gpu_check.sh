#!/usr/bin/env bash
# The GPU check of mmfocal's backbones (tools/analysis/gpu_check.py): environment, CUDA
# tests, convolution timings and the benchmark tables, in timed sections within a budget
# (--budget, 420 s by default); logs in work_dirs/gpu_check, or in the folder given by
# --out or named by the OUT environment variable.
#
#   bash tools/analysis/gpu_check.sh wheels      on a machine with the package index:
#                                                download the wheels into .whl/
#   bash tools/analysis/gpu_check.sh [--budget S] [--out DIR]
#                                                on the GPU machine: install .whl/ (when
#                                                present), then run the check
#   PYTHON=.venv/bin/python bash tools/analysis/gpu_check.sh --dry-run
#                                                the same on the CPU, tiny sizes
#
# The GPU machine needs Python 3.12 (the compiled wheels are downloaded for CPython 3.12 on
# x86-64 Linux), torch with CUDA, numpy and pytest, and a copy of the clone with its .whl/
# folder; it needs no network and no OpenMMLab package. The check needs mmengine
# (BaseModule, weight init, logging), mmcv's Python layers (build_norm_layer, DropPath) and
# mmdet (the registry, Swin-T), all pure Python, and what they import that such a machine
# lacks; mmcv comes without compiled operators (mmcv-lite): mmdet imports mmcv.ops, whose
# modules only look their kernels up in mmcv._ext at import, so a stand-in _ext whose
# kernels raise lets mmdet import; Swin-T and mmfocal's backbones use none of them. Where
# the machine already has mmengine, mmcv with its ops and mmdet, run it without .whl/.
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
  # the pure wheels, and the compiled ones built for this interpreter (cp312 as downloaded)
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
