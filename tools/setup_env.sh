#!/usr/bin/env bash
# Installs a whole stack for mmfocal at the versions of a constraints file: torch, mmcv 2.1.0
# with compiled ops, mmdet, mmseg and mmfocal (editable). Re-running it when nothing changed
# only checks the environment and exits.
#
#   bash tools/setup_env.sh [WHEEL_DIR]               (make setup [WHEELS=DIR])
#   STACK=oldest bash tools/setup_env.sh [WHEEL_DIR]  (make setup STACK=oldest)
#
# STACK=latest (default): requirements/constraints.txt (torch 2.13.0), into .venv at the
#   repository root, or into the active virtual environment when that holds none of torch,
#   mmcv, mmengine, mmdet, mmsegmentation and numpy at other versions than the pins (else it
#   stops, changing nothing, and says what it would replace), with the deploy extra and
#   mmdeploy 1.3.1 (installed with --no-deps, see setup.cfg).
# STACK=oldest: requirements/constraints-oldest.txt (torch 2.1.2, numpy 1.x), always into
#   .venv-oldest (never into an active environment, whose torch it would replace), with
#   the classification extras (mmpretrain, scikit-learn) and the torchvision built for that
#   torch, and timm (the peer of the timm checkpoint layout): the stack on which image
#   classification is tested (torchvision does not import beside the CPU build of torch
#   2.13.0 that the development stack installs).
# WHEEL_DIR (default ../shared/wheels when present) is searched first for an mmcv wheel
# built against the stack's torch: WHEEL_DIR itself for the latest stack, WHEEL_DIR/torch-X.Y.Z
# for another torch. Without one, mmcv is built from its source release (about 15 minutes
# on 2 cores); a wheel whose ops do not load with this torch is rebuilt from source too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

stack=${STACK:-latest}
case "$stack" in
  latest) constraints=requirements/constraints.txt extras=det,seg,tests,docs,deploy,lint ;;
  oldest) constraints=requirements/constraints-oldest.txt extras=det,seg,cls,demo,tests ;;
  *) echo "setup: STACK must be latest or oldest, got '$stack'" >&2; exit 2 ;;
esac
torch_version=$(sed -n 's/^torch==//p' "$constraints")

wheels=${1:-${WHEELS:-}}
if [ -z "$wheels" ] && [ -d "$root/../shared/wheels" ]; then
  wheels=$(cd "$root/../shared/wheels" && pwd)
fi
[ "$stack" = latest ] || wheels=${wheels:+$wheels/torch-$torch_version}

if [ "$stack" = oldest ]; then
  venv="$root/.venv-oldest"
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  venv="$VIRTUAL_ENV"
else
  venv="$root/.venv"
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"

# An environment this script did not create is never changed: where it holds one of the
# stack's core packages at another version than the constraints pin, stop and say so.
if [ "$venv" != "$root/.venv" ] && [ "$venv" != "$root/.venv-oldest" ]; then
  replaced=$("$py" - "$constraints" <<'PY'
import re, sys
from importlib.metadata import PackageNotFoundError, version
pins = dict(re.match(r'([\w.-]+)==(\S+)', line).groups()
            for line in open(sys.argv[1]) if re.match(r'[\w.-]+==', line))
for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'numpy'):
    try:
        have = version(name)
    except PackageNotFoundError:
        continue
    if name in pins and have.split('+')[0] != pins[name]:
        print(f'  {name} {have} would be replaced by {pins[name]}')
PY
  )
  if [ -n "$replaced" ]; then
    cat >&2 <<MSG
setup: the active virtual environment $venv holds other versions of
packages that the $stack stack pins ($constraints):
$replaced
setup: nothing was installed or changed. Either
  - run 'deactivate' and then 'make setup' (or 'make demo') again: mmfocal's own
    environment is set up in $root/.venv, or
  - keep this environment: install mmfocal alone with pip install -e '.[det,seg]'
    (its requirements are ranges, docs/en/compatibility.md) and run the demo there with
    python tools/demo.py det   (or seg).
MSG
    exit 2
  fi
fi

stamp="$venv/.mmfocal-setup"
want=$(cat setup.cfg pyproject.toml "$constraints" tools/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$py" -c "import mmcv.ops, mmdet, mmseg, mmfocal" 2>/dev/null \
   && { [ "$stack" = latest ] || "$py" -c "import mmpretrain.models, timm" 2>/dev/null; }; then
  echo "setup: $stack stack at $venv is up to date"
  exit 0
fi

pip=("$py" -m pip install --disable-pip-version-check -q -c "$constraints")
"$py" -m pip install --disable-pip-version-check -q --upgrade pip
"${pip[@]}" torch

mmcv_ops_load() {
  "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null
}
if ! mmcv_ops_load; then
  # mmcv's setup.py imports pkg_resources and skips its ops unless built in this environment.
  "$py" -m pip install --disable-pip-version-check -q "setuptools<70" wheel ninja
  find_links=()
  [ -n "$wheels" ] && [ -d "$wheels" ] && find_links=(--find-links "$wheels")
  MMCV_WITH_OPS=1 "${pip[@]}" --no-build-isolation "${find_links[@]}" mmcv
  if ! mmcv_ops_load; then
    echo "setup: the mmcv wheel's ops do not load with torch $torch_version; building mmcv"
    MMCV_WITH_OPS=1 "${pip[@]}" --no-build-isolation --no-binary mmcv --no-cache-dir \
      --force-reinstall --no-deps mmcv
  fi
fi

"${pip[@]}" setuptools
"${pip[@]}" -e ".[$extras]"
if [ "$stack" = latest ]; then
  # its wheel pins protobuf<=3.20.2; what it needs at run time is in the deploy extra
  "${pip[@]}" --no-deps mmdeploy
else
  # mmpretrain imports torchvision when it builds a model or a pipeline
  "${pip[@]}" torchvision timm
  "$py" -c "import mmpretrain.models, timm"
fi
"$py" -c "import mmcv.ops; from mmcv.ops import RoIAlign, nms; import mmdet, mmseg, mmfocal"
echo "$want" > "$stamp"
echo "setup: $stack stack done ($py, torch $torch_version)"
