"""The public jupyter_kernel_test suite, with TypeScript samples for every test it offers."""
from __future__ import annotations

import tempfile
import unittest

import jupyter_kernel_test
from jupyter_client.manager import KernelManager, start_new_kernel

import pytest

from conftest import KERNEL_NAME

# The suite offers a test for every feature; nbscale has a sample for each, so a
# skipped test (a sample missing or a feature not answered) is a failure (conftest.py).
pytestmark = pytest.mark.no_skip


class NbscaleKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME

    @classmethod
    def setUpClass(cls) -> None:
        # A notebook folder of its own, as JupyterLab gives every kernel.
        cls._cwd = tempfile.TemporaryDirectory(prefix="nbscale-conformance-")
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, cwd=cls._cwd.name)
        # The kernel answers kernel_info while its type checker still loads; the suite's 0.1 s
        # between a reply's messages is about the protocol, so let the first cell (which waits
        # for the checker, and opens the datastore) finish before it starts.
        cls.kc.execute_interactive("0", timeout=120)

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._cwd.cleanup()
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("some error")'

    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": 'const longVariableName = 1;\nlongVariab', "matches": {"longVariableName"}},
    ]

    complete_code_samples = ["1 + 1", "const x = 1;", "function f() { return 1; }", "for (const i of [1]) {}"]
    incomplete_code_samples = ["function f() {", "const a = [1,", "if (true) {\n  let y = 2;"]
    invalid_code_samples: list[str] = []

    code_page_something = "Math.max?"

    code_generate_error = 'throw new Error("expected failure")'

    code_execute_result = [
        {"code": "6*7", "result": "42"},
        {"code": '"a" + "b"', "result": "'ab'"},
        {"code": "[1, 2, 3].map((x) => x * 2)", "result": "[ 2, 4, 6 ]"},
    ]

    code_display_data = [
        {"code": 'import { display } from "nbscale"; display.html("<b>bold</b>")', "mime": "text/html"},
        {"code": 'import { display } from "nbscale"; display.svg("<svg></svg>")', "mime": "image/svg+xml"},
        {"code": 'import { display } from "nbscale"; display.markdown("*hi*")', "mime": "text/markdown"},
        {"code": 'import { display } from "nbscale"; display.json({ a: 1 })', "mime": "application/json"},
        {"code": 'import { display } from "nbscale"; display.png(new Uint8Array([137, 80, 78, 71]))', "mime": "image/png"},
        {"code": 'import * as tslab from "tslab"; tslab.display.html("<i>tslab</i>")', "mime": "text/html"},
    ]

    code_history_pattern = "6?7"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "Math.max"

    code_clear_output = 'import { display } from "nbscale"; display.clear()'


class NbscaleIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True

    @classmethod
    def setUpClass(cls) -> None:
        cls._cwd = tempfile.TemporaryDirectory(prefix="nbscale-welcome-")
        cls.km = KernelManager(kernel_name=cls.kernel_name)
        cls.km.start_kernel(cwd=cls._cwd.name)
        cls.kc = cls.km.client()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls._cwd.cleanup()


if __name__ == "__main__":
    unittest.main()
