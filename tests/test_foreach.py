"""`%%step --foreach` on local workers (issue 6), through the real kernel over
jupyter_client: ordered typed join, partial failure, per-item retries, live
progress, bad input, and each item recorded as its own execution."""
from __future__ import annotations

import glob
import json
import os
import queue
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import KernelSession, ok, fails, value

STEP_MIME = "application/vnd.nbscale.step+json"


@pytest.fixture(scope="module")
def cwd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("foreach"))


@pytest.fixture(scope="module")
def k(cwd: str) -> Iterator[KernelSession]:
    session = KernelSession(cwd=cwd)
    yield session
    session.close()


def json_value(k: KernelSession, expr: str) -> Any:
    return json.loads(value(k, f"JSON.stringify({expr})")[1:-1].replace("\\'", "'"))


def stream(msgs: list[dict[str, Any]], name: str) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == name)


def statuses(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"]["data"][STEP_MIME] for m in msgs if m["msg_type"] in ("display_data", "update_display_data") and STEP_MIME in m["content"]["data"]]


def test_results_come_back_as_arrays_in_item_order(k: KernelSession) -> None:
    ok(k, "const configs = [5, 4, 3, 2, 1];")
    # Later items finish first: the join is by index, not by arrival.
    msgs = ok(k, "%%step fit --foreach configs --parallel 3\n"
                 "await new Promise((r) => setTimeout(r, item * 80));\n"
                 "console.log(`item ${index} done`);\n"
                 "const score = item * 10 + index;\n"
                 "const label = `c${item}`;")
    assert json_value(k, "score") == [50, 41, 32, 23, 14]
    assert json_value(k, "label") == ["c5", "c4", "c3", "c2", "c1"]
    # Each item's lines come prefixed with its index.
    assert sorted(stream(msgs, "stdout").splitlines()) == [f"[{i}] item {i} done" for i in range(5)]


def test_results_are_typed_arrays_and_item_is_typed(k: KernelSession) -> None:
    ok(k, "const pts = [{ x: 1, name: 'a' }, { x: 2, name: 'b' }];")
    ok(k, "%%step typed --foreach pts\nconst doubled = item.x * 2;\nconst tag: string = `${item.name}${index}`;")
    err = fails(k, "const s: string = doubled;")
    assert err["ename"] == "TSError" and "'number[]' is not assignable to type 'string'" in err["evalue"]
    ok(k, "const d: number[] = doubled; const t: string[] = tag;")
    # `item` has the element type of the list: a typo is a compile error and nothing runs.
    err = fails(k, "%%step typo --foreach pts\nconst y = item.nope;")
    assert err["ename"] == "TSError" and "Property 'nope' does not exist" in err["evalue"]
    assert not statuses(err["msgs"]), "a step with a type error must not start"


def test_any_iterable_and_expressions_work(k: KernelSession) -> None:
    ok(k, "const configs = [5, 4, 3, 2, 1];")  # each test says what it iterates (they also run alone)
    ok(k, "const m = new Map([['a', 1], ['b', 2]]);")
    ok(k, "%%step pairs --foreach m\nconst kv = `${item[0]}=${item[1]}`;")
    assert json_value(k, "kv") == ["a=1", "b=2"]
    ok(k, "%%step sliced --foreach \"configs.slice(0, 2)\"\nconst half = item / 2;")
    assert json_value(k, "half") == [2.5, 2]


def test_partial_failure_reports_indices_and_keeps_the_rest(k: KernelSession) -> None:
    ok(k, "const configs = [5, 4, 3, 2, 1];")  # each test says what it iterates (they also run alone)
    err = fails(k, "%%step some_fail --foreach configs --parallel 2\n"
                   "if (index === 1 || index === 3) throw new Error(`bad config ${item}`);\n"
                   "const sq = item * item;")
    assert err["ename"] == "ForeachItemsFailed"
    assert "2 of 5 items" in err["evalue"] and "indices 1, 3" in err["evalue"]
    assert "item 1:" in err["text"] and "bad config 4" in err["text"]
    assert "item 3:" in err["text"] and "bad config 2" in err["text"]
    assert "line 2" in err["text"]  # mapped to the cell's own line
    assert value(k, "sq") == "[ 25, undefined, 9, undefined, 1 ]"
    final = statuses(err["msgs"])[-1]
    assert final["state"] == "failed" and final["foreach"] == {"done": 3, "running": 0, "failed": 2, "total": 5}


def test_retries_apply_to_each_item(k: KernelSession) -> None:
    ok(k, "const configs = [5, 4, 3, 2, 1];")  # each test says what it iterates (they also run alone)
    msgs = ok(k, "%%step flaky --foreach configs --parallel 2 --retries 1\n"
                 "if (index === 2 && process.env.NBSCALE_ATTEMPT === '1') process.kill(process.pid, 'SIGKILL');\n"
                 "const attempt = Number(process.env.NBSCALE_ATTEMPT);")
    assert json_value(k, "attempt") == [1, 1, 2, 1, 1]
    err = stream(msgs, "stderr")
    assert "`flaky[2]`: attempt 1 of 2 failed" in err and "`flaky[2]` succeeded on attempt 2 of 2" in err
    assert "flaky[0]" not in err


def test_progress_updates_arrive_while_items_run(k: KernelSession, tmp_path: Path) -> None:
    # The last item waits for a file the test creates only once the cell has shown progress
    # with the other five items done: progress that arrived in one burst at the end would
    # never release it (it gives up after 60 s and fails).
    release = tmp_path / "release"
    ok(k, "const six = [0, 1, 2, 3, 4, 5];")
    msg_id = k.kc.execute(
        "%%step slow --foreach six --parallel 2\n"
        'import * as fs from "fs";\n'
        "if (index === 5) {\n"
        "  const until = Date.now() + 60_000;\n"
        f"  while (!fs.existsSync({json.dumps(str(release))}) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));\n"
        f"  if (!fs.existsSync({json.dumps(str(release))})) throw new Error('never released: no progress reached the notebook while this item ran');\n"
        "}\n"
        "const v = item;")
    seen: list[dict[str, Any]] = []
    released_at = None
    deadline = time.monotonic() + 120
    while True:
        msg = k.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        seen.append(msg)
        data = msg["content"].get("data", {})
        if released_at is None and STEP_MIME in data:
            s_ = data[STEP_MIME]
            if s_["state"] == "running" and s_["foreach"]["done"] == 5 and s_["foreach"]["running"] == 1:
                release.write_text("")
                released_at = len(seen)
    reply = k.shell_reply(msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert released_at is not None, "no progress update while the last item ran"
    shows = [m for m in seen if m["msg_type"] in ("display_data", "update_display_data")]
    assert shows[0]["msg_type"] == "display_data" and all(m["msg_type"] == "update_display_data" for m in shows[1:])
    assert len({m["content"]["transient"]["display_id"] for m in shows}) == 1, "one progress output, updated in place"
    status = [m["content"]["data"][STEP_MIME] for m in shows]
    # Updates while items are still running, before the end: some with part of the items done.
    assert any(s["state"] == "running" and 0 < s["foreach"]["done"] < 6 for s in status), status
    assert all(s["foreach"]["running"] <= 2 for s in status), "--parallel 2 exceeded"
    final = status[-1]
    assert final["state"] == "succeeded" and final["foreach"] == {"done": 6, "running": 0, "failed": 0, "total": 6}
    texts = [m["content"]["data"]["text/plain"] for m in shows]
    assert "6/6 done" in texts[-1] and "█" in texts[-1]
    assert any("left" in t for t in texts), "an estimate once an item finished"


def test_empty_list_succeeds_with_empty_arrays_and_says_so(k: KernelSession) -> None:
    ok(k, "const none: number[] = [];")
    msgs = ok(k, "%%step nothing --foreach none\nconst out = item * 2;")
    assert "is empty: nothing ran" in stream(msgs, "stdout") and "`out` is an empty array" in stream(msgs, "stdout")
    assert value(k, "out") == "[]"
    ok(k, "const o: number[] = out;")


def test_bad_input_names_the_expression(k: KernelSession) -> None:
    ok(k, "const configs = [5, 4, 3, 2, 1];")  # each test says what it iterates (they also run alone)
    err = fails(k, "%%step s1 --foreach missing_list\nconst a = item;")
    assert err["ename"] == "ForeachInputError" and "`missing_list` is not defined" in err["evalue"]
    ok(k, "const answer = 42; const nothing_here = undefined;")
    err = fails(k, "%%step s2 --foreach answer\nconst a = item;")
    assert err["ename"] == "ForeachInputError" and "`--foreach answer` is a number (42), not an array or iterable" in err["evalue"]
    err = fails(k, "%%step s3 --foreach nothing_here\nconst a = item;")
    assert "`--foreach nothing_here` is undefined" in err["evalue"]
    err = fails(k, "%%step s4 --foreach configs --parallel 0\nconst a = item;")
    assert "--parallel" in err["evalue"]
    err = fails(k, "%%step s5 --foreach configs --on kernel\nconst a = item;")
    assert err["ename"] == "StepOptionUnsupported" and "--on local" in err["evalue"]
    err = fails(k, "%%step s6 --foreach configs --on batch\nconst a = item;")
    # a Batch foreach is one array job (tests/test_batch_foreach.py); here, with no queue, it is refused before anything runs
    assert err["ename"] == "BatchConfigError" and "was not sent to AWS Batch" in err["evalue"], err


def test_each_item_is_recorded_and_linked_to_the_foreach(k: KernelSession, cwd: str) -> None:
    ok(k, "const trio = ['x', 'y', 'z'];")
    ok(k, "%%step rec --foreach trio\nconsole.log(`hello ${item}`);\nconst up = item.toUpperCase();")
    ok(k, "1")  # the recorder writes after the reply; the next cell waits for it
    records = []
    for path in glob.glob(os.path.join(cwd, ".nbscale", "executions", "*.json")):
        with open(path) as f:
            r = json.load(f)
        if r.get("step") and r["step"]["name"] == "rec":
            records.append(r)
    parents = [r for r in records if "foreachItems" in r["step"]["options"]]
    items = [r for r in records if "foreachItem" in r["step"]["options"]]
    assert len(parents) == 1 and len(items) == 3
    parent = parents[0]
    assert set(parent["outputs"]) == {"up"} and parent["outputs"]["up"]["ts_type"] == "string[]"
    assert sorted(parent["step"]["options"]["foreachItems"]) == sorted(r["id"] for r in items)
    for r in items:
        link = r["step"]["options"]["foreachItem"]
        i = link["index"]
        assert link["parent"] == parent["id"]
        assert r["status"] == "ok" and list(r["outputs"]) == [f"up[{i}]"]
        assert r["stdout"]["text"] == f"hello {'xyz'[i]}\n"


def test_failed_slots_keep_the_array_type(k: KernelSession) -> None:
    # Bound as `Array<number | undefined>`; the session checks without strictNullChecks, so it reads `number[]`.
    ok(k, "const fives = [5, 4, 3];")
    fails(k, "%%step half_fail --foreach fives\nif (index === 0) throw new Error('no');\nconst h = item + 1;")
    err = fails(k, "const s: string = h;")
    assert "'number[]' is not assignable to type 'string'" in err["evalue"] or "(number | undefined)[]" in err["evalue"], err["evalue"]
    assert value(k, "h") == "[ undefined, 5, 4 ]"


def test_interrupt_stops_the_foreach_and_keeps_the_kernel(k: KernelSession) -> None:
    ok(k, "const spins = [0, 1, 2, 3, 4];")
    # Workers already up (as after the earlier steps of a session); a cold pool is the next test.
    ok(k, "%%step warm_up --foreach spins --parallel 2\nconst warmed = index;")
    interrupt_a_spinning_foreach(k)


def test_interrupt_while_the_pool_is_still_starting_workers_stops_the_foreach(fresh_kernel: KernelSession) -> None:
    """The first foreach of a new kernel: one item spins on a warm worker while the
    second worker is still starting. The interrupt must stop that one too."""
    ok(fresh_kernel, "const spins = [0, 1, 2, 3, 4];")
    interrupt_a_spinning_foreach(fresh_kernel)


def interrupt_a_spinning_foreach(k: KernelSession) -> None:
    msg_id = k.kc.execute("%%step spin --foreach spins --parallel 2\nconsole.log('spinning');\nwhile (true) {}\nconst never = 1;")
    while True:
        msg = k.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    k.km.interrupt_kernel()
    # The items never end by themselves: any reply at all means the interrupt stopped them.
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the foreach")
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    msgs = k.collect(msg_id)
    assert statuses(msgs)[-1]["state"] == "cancelled"
    assert value(k, "1 + 1") == "2"
    # The pool recovers: the next foreach runs.
    ok(k, "%%step after --foreach spins\nconst fine = index;")
    assert json_value(k, "fine") == [0, 1, 2, 3, 4]
