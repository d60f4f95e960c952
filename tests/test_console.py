"""`jupyter console` in a pseudo-terminal, typed as a user types.

A lone `%%step NAME` line must not run an empty step: the kernel answers
`incomplete` until a blank line ends the body (IPython's rule for cell
magics). Multi-line code, completion (Tab) and `name?` work there too.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect

VENV_BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_jupyter_console_steps_multiline_completion_and_inspect(tmp_path: Path) -> None:
    env = dict(os.environ, NBSCALE_DATASTORE=str(tmp_path / "ds"), TERM="xterm")
    # The console's own waits (is_complete 1 s, a completion 5 s by default) are raised: on a busy machine a
    # first completion can take longer, and the console would then show none (the test waits for events).
    c = pexpect.spawn(
        str(VENV_BIN / "jupyter"),
        ["console", "--kernel", "nbscale", "--ZMQTerminalInteractiveShell.kernel_is_complete_timeout=60", "--ZMQCompleter.timeout=60"],
        env=env, encoding="utf-8", timeout=90, cwd=str(tmp_path), dimensions=(40, 200),
    )
    log_path = Path(os.environ.get("NBSCALE_TEST_CONSOLE_LOG", str(tmp_path / "console.log")))
    log = log_path.open("w")
    c.logfile_read = log

    def prompt(n: int) -> str:
        # prompt_toolkit colours the number: escapes sit between "In [" and it.
        return r"In \[(?:\x1b\[[0-9;]*m)*%d(?:\x1b\[[0-9;]*m)*\]" % n

    def line(text: str) -> None:
        c.send(text)
        c.send("\r")

    try:
        c.expect(prompt(1))
        # jupyter_client's wait_for_ready may ask kernel_info twice while a kernel starts, and
        # jupyter_console's is_complete takes the next shell message as its answer: a first cell
        # (whose reply handling skips stale replies) drains the extra kernel_info_reply.
        line("1")
        c.expect(r"Out\[")
        c.expect(prompt(2))
        line("%%step hello --on kernel")
        c.expect(r"\.\.\.:")  # incomplete: the body is still to come
        line("const greeting = 'hi from step';")
        c.expect(r"\.\.\.:")
        line("console.log(greeting);")
        c.expect(r"\.\.\.:")
        line("")  # the blank line ends the cell
        c.expect("step hello")
        c.expect("hi from step")
        c.expect(prompt(3))
        line("greeting.toUpperCase()")
        c.expect("HI FROM STEP")
        c.expect(prompt(4))
        line("function twice(x: number) {")
        c.expect(r"\.\.\.:")
        line("return x * 2; }")
        c.expect(prompt(5))
        line("twice(21)")
        c.expect("42")
        c.expect(prompt(6))
        line("twice?")
        c.expect(r"function twice\(x: number\): number")
        c.expect(prompt(7))
        c.send("gree")
        c.send("\t")
        # The completed word as the terminal shows it: prompt_toolkit may draw only the part it adds
        # ("ting"), with its escape sequences in between.
        c.expect(r"(?:\x1b\[[0-9;?]*[A-Za-z])*".join(re.escape(ch) for ch in "greeting"))
        c.send("\r")
        # With the completion menu open, the first Enter accepts the completion; the next runs the line.
        if c.expect(["hi from step", pexpect.TIMEOUT], timeout=15) == 1:
            c.send("\r")
            c.expect("hi from step")
    finally:
        log.close()
        if c.isalive():
            c.terminate(force=True)
    text = ANSI.sub("", log_path.read_text())
    # The step ran once, with its body: never as an empty step.
    assert text.count("step hello") >= 1 and "hi from step" in text, text[-2000:]
