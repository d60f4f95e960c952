"""Start the nbscale kernel (a Node program) for Jupyter.

The kernelspec runs ``python -m jupyterlab_nbscale.kernel_launcher -f
{connection_file}``. This module finds the Node kernel and *replaces* the
Python process with it (``os.execvp``), so the pid Jupyter knows is the
kernel's own pid: signals and ``interrupt_request`` messages reach Node
directly and no Python process stays in between.

Where the kernel is looked for, in order:

1. ``NBSCALE_KERNEL_JS``: path of the kernel's CLI script (``bin/nbscale.js``),
   run with ``node`` (or ``NBSCALE_NODE``);
2. the repository checkout this package was installed from in editable mode
   (``<repo>/kernel/bin/nbscale.js``);
3. an ``nbscale`` executable on ``PATH`` (``npm install -g nbscale``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence

KERNEL_JS_ENV = "NBSCALE_KERNEL_JS"
NODE_ENV = "NBSCALE_NODE"
EXIT_NOT_FOUND = 2

INSTALL_HINT = (
    "Install the nbscale kernel (Node 20 or newer) with one of:\n"
    "  npm install -g nbscale            # puts 'nbscale' on PATH\n"
    "  export NBSCALE_KERNEL_JS=/path/to/nbscale/bin/nbscale.js\n"
    "or, in a checkout of the nbscale repository: npm ci && npm run build:kernel"
)


class LaunchError(Exception):
    """The kernel cannot be started; the message says what to install."""


def repo_kernel_js() -> Path:
    """Where the kernel script is in a repository checkout."""
    return Path(__file__).resolve().parent.parent / "kernel" / "bin" / "nbscale.js"


def find_node(env: Optional[dict] = None) -> str:
    env = os.environ if env is None else env
    node = env.get(NODE_ENV) or shutil.which("node", path=env.get("PATH"))
    if not node:
        raise LaunchError(
            "nbscale: 'node' was not found on PATH. Install Node.js 20 or newer "
            f"(or set {NODE_ENV} to the node executable)."
        )
    return node


def kernel_command(connection_file: str, extra: Sequence[str] = (),
                   env: Optional[dict] = None) -> List[str]:
    """The argv that runs the nbscale kernel, or LaunchError."""
    env = os.environ if env is None else env
    tail = ["kernel", "--connection-file", connection_file, *extra]

    explicit = env.get(KERNEL_JS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise LaunchError(
                f"nbscale: {KERNEL_JS_ENV}={explicit} does not exist.\n{INSTALL_HINT}"
            )
        return [find_node(env), str(path), *tail]

    script = repo_kernel_js()
    if script.is_file():
        package = script.parent.parent
        entry = package / "dist" / "src" / "cli" / "main.js"
        if not entry.is_file():
            raise LaunchError(
                f"nbscale: the kernel in {package} is not built (no {entry}).\n"
                f"Run 'npm ci && npm run build:kernel' in {package.parent}."
            )
        return [find_node(env), str(script), *tail]

    exe = shutil.which("nbscale", path=env.get("PATH"))
    if exe:
        return [exe, *tail]

    raise LaunchError(f"nbscale: the nbscale kernel was not found.\n{INSTALL_HINT}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyterlab_nbscale.kernel_launcher",
        description="Start the nbscale TypeScript kernel for Jupyter.",
    )
    parser.add_argument("-f", "--connection-file", required=True,
                        help="the Jupyter connection file")
    parser.add_argument("--print-command", action="store_true",
                        help="print the command that would run and exit")
    args, extra = parser.parse_known_args(argv)
    try:
        cmd = kernel_command(args.connection_file, extra)
    except LaunchError as e:
        print(str(e), file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.print_command:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(cmd[0], cmd)
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
