#!/usr/bin/env bash
# Sets everything up (see setup.sh) and starts JupyterLab with the nbscale
# extension and kernel on the example notebook: local workers, local datastore.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT/examples"
EXTRA=()
# JupyterLab refuses root without this; containers and CI boxes often are root.
[ "$(id -u)" = 0 ] && EXTRA+=(--allow-root)
exec "$ROOT/.venv/bin/jupyter" lab quickstart.ipynb "${EXTRA[@]}" "$@"
