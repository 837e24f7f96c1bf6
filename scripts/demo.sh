#!/usr/bin/env bash
# The README's first command: set up moe-run on a fresh Debian machine with Node 20 and run the CPU demo
# (tinymoe, 2 ranks, gloo). It installs what is missing where it can (npm packages; Debian's
# python3-torch when run as root), or says exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

has_torch() { "$1" -c 'import torch' >/dev/null 2>&1; }

find_python() {
  for py in "${MOE_RUN_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 && has_torch "$py" && { echo "$py"; return 0; }
  done
  return 1
}

if ! python=$(find_python); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "demo: no Python with torch found; installing Debian's python3-torch (a few minutes)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq python3-torch >/dev/null
    python=$(find_python) || { echo "demo: python3-torch installed but /usr/bin/python3 cannot import torch" >&2; exit 1; }
  else
    echo "demo: no Python with torch found. Install it, then run this again:" >&2
    echo "  sudo apt-get install python3-torch      (Debian/Ubuntu), or" >&2
    echo "  pip install torch, and export MOE_RUN_PYTHON=/path/to/that/python" >&2
    exit 1
  fi
fi
export MOE_RUN_PYTHON="$python"

if [ ! -d node_modules ] || [ ! -f dist/src/cli.js ]; then
  echo "demo: installing npm packages and building"
  npm install --no-audit --no-fund --loglevel=error
fi

echo "demo: running configs/tiny-cpu.yaml with $python ($("$python" -c 'import torch; print("torch", torch.__version__)'))"
exec node bin/moe-run --config configs/tiny-cpu.yaml "$@"
