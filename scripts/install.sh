#!/usr/bin/env bash
# Installs nextscale into the current Python. Usage: scripts/install.sh [dev]
# torch goes in first and only when missing, so no dependency can pull a second (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install -q "torch==${NEXTSCALE_TORCH_VERSION:-2.13.0}"
fi
extras=""
[ "${1:-}" = "dev" ] && extras="[dev,text,clap]"   # the tests cover the text and CLAP paths too
"$PY" -m pip install -q -e ".${extras}"
