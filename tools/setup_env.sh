#!/usr/bin/env bash
# Installs everything mmfocal needs: torch, mmcv 2.1.0 with compiled ops, mmdet, mmseg and
# mmfocal (editable). Installs into the active virtual environment, or into .venv at the
# repository root. Re-running it when nothing changed only checks and exits.
#
#   bash tools/setup_env.sh [WHEEL_DIR]     (or: make setup WHEELS=DIR)
#
# WHEEL_DIR (default ../shared/wheels when present) is searched first for an mmcv wheel;
# without one, mmcv is built from the registry's source release (about 17 minutes on 2 cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

wheels=${1:-${WHEELS:-}}
if [ -z "$wheels" ] && [ -d "$root/../shared/wheels" ]; then
  wheels=$(cd "$root/../shared/wheels" && pwd)
fi

if [ -n "${VIRTUAL_ENV:-}" ]; then
  py="$VIRTUAL_ENV/bin/python"
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  py="$root/.venv/bin/python"
fi

pin() {  # pin NAME -> the requirement line for NAME in setup.cfg
  "$py" - "$1" <<'PY'
import configparser, re, sys
cfg = configparser.ConfigParser()
cfg.read('setup.cfg')
lines = [cfg['options']['install_requires']] + list(cfg['options.extras_require'].values())
for line in '\n'.join(lines).split('\n'):
    if re.match(rf'{re.escape(sys.argv[1])}\s*(==|>=|<|$)', line.strip()):
        print(line.strip())
        break
else:
    sys.exit(f'no pin for {sys.argv[1]} in setup.cfg')
PY
}

stamp=.venv-stamp
want=$(cat setup.cfg pyproject.toml tools/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want:$py" ] \
   && "$py" -c "import mmcv.ops, mmdet, mmseg, mmfocal" 2>/dev/null; then
  echo "setup: environment at $(dirname "$(dirname "$py")") is up to date"
  exit 0
fi

pip=("$py" -m pip install --disable-pip-version-check -q)
"${pip[@]}" --upgrade pip
"${pip[@]}" "$(pin torch)"

if ! "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  # mmcv's setup.py imports pkg_resources and skips its ops unless built in this environment.
  "${pip[@]}" "setuptools<70" wheel ninja
  find_links=()
  [ -n "$wheels" ] && find_links=(--find-links "$wheels")
  MMCV_WITH_OPS=1 "${pip[@]}" --no-build-isolation "${find_links[@]}" "$(pin mmcv)"
fi

"${pip[@]}" "$(pin setuptools)"
"${pip[@]}" -e ".[det,seg,tests,docs]"
"$py" -c "import mmcv.ops; from mmcv.ops import RoIAlign, nms; import mmdet, mmseg, mmfocal"
echo "$want:$py" > "$stamp"
echo "setup: done ($py)"
