"""Kernel behaviour through jupyter_client over the real Jupyter protocol:
interrupts, error shapes, stdin, comms, stop_on_error, and hostile messages."""
from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

from jupyter_client.session import Session

from conftest import KernelSession


def error_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["content"]["status"] == "error", reply["content"]
    return reply["content"]


def test_variables_and_types_carry_across_cells(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    reply, _ = k.run("const base = 10;\nfunction scale(x: number) { return x * base; }")
    assert reply["content"]["status"] == "ok"
    reply, msgs = k.run("scale(4)")
    results = [m for m in msgs if m["msg_type"] == "execute_result"]
    assert results and results[0]["content"]["data"]["text/plain"] == "40"
    err = error_of(k.run('const s: string = scale(1);')[0])
    assert err["ename"] == "TSError"
    assert "1:7" in err["evalue"] and "not assignable to type 'string'" in err["evalue"]


def test_type_error_names_line_and_column_and_runs_nothing(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    err = error_of(k.run('console.log("side effect");\nlet n: number = 1;\nn = "two";')[0])
    assert err["evalue"].startswith("3:1 - "), err["evalue"]
    _, msgs = k.run("1")
    # The cell with the type error printed nothing: it never ran.
    assert "side effect" not in k.stdout(msgs)


def test_syntax_error_is_an_error_reply(fresh_kernel: KernelSession) -> None:
    err = error_of(fresh_kernel.run("const = 5")[0])
    assert err["ename"] == "TSError" and "1:" in err["evalue"]


def test_runtime_error_traceback_uses_cell_lines(fresh_kernel: KernelSession) -> None:
    code = 'interface P { x: number }\nfunction f(p: P): number {\n  if (p.x > 2) {\n    throw new RangeError("too big: " + p.x);\n  }\n  return p.x;\n}\nf({ x: 5 })'
    reply, msgs = fresh_kernel.run(code)
    err = error_of(reply)
    assert err["ename"] == "RangeError" and err["evalue"] == "too big: 5"
    tb = "\n".join(err["traceback"])
    assert "line 4" in tb, tb
    assert 'throw new RangeError("too big: " + p.x);' in tb
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "RangeError"


def test_request_right_after_an_error_runs_when_stop_on_error_is_false(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    first = k.kc.execute('throw new Error("x")', stop_on_error=False)
    second = k.kc.execute("21 * 2")
    assert k.shell_reply(first)["content"]["status"] == "error"
    assert k.shell_reply(second)["content"]["status"] == "ok"


def test_queued_requests_are_aborted_after_an_error_by_default(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    first = k.kc.execute('await new Promise((r) => setTimeout(r, 300)); throw new Error("x")')
    second = k.kc.execute('console.log("should not run")')
    assert k.shell_reply(first)["content"]["status"] == "error"
    assert k.shell_reply(second)["content"]["status"] == "aborted"
    # ...and a request sent after the failure runs normally.
    assert k.run("1 + 1")[0]["content"]["status"] == "ok"


def test_interrupt_stops_a_busy_synchronous_loop(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    k.run("let kept = 42;")
    # Interrupt once the loop has started (its first line says so), not after a guessed delay.
    msg_id = k.kc.execute('console.log("spinning");\nlet spins = 0;\nwhile (true) { spins++; }')
    k.wait_stream(msg_id, "spinning", what="the loop never started")
    k.km.interrupt_kernel()
    # The loop never ends by itself: any reply at all means the interrupt stopped it.
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the loop")
    k.collect(msg_id)
    err = error_of(reply)
    assert err["ename"] == "KeyboardInterrupt"
    reply, msgs = k.run("kept + 1")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["43"]


def test_interrupt_stops_a_pending_await(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    msg_id = k.kc.execute('console.log("waiting");\nawait new Promise(() => {}); 1')
    k.wait_stream(msg_id, "waiting", what="the cell never reached its await")
    k.km.interrupt_kernel()
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the pending await")
    k.collect(msg_id)
    assert error_of(reply)["ename"] == "KeyboardInterrupt"
    assert k.run("2")[0]["content"]["status"] == "ok"


def test_output_of_a_long_synchronous_loop_arrives_while_it_runs(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    # The loop spins until a file exists that the test creates only once it has received
    # "started": if stdout were held back until the loop ended, it would never end
    # (the loop gives up after 60 s and says so).
    k = fresh_kernel
    release = tmp_path / "release"
    msg_id = k.kc.execute(
        'import * as fs from "fs";\n'
        'console.log("started");\n'
        f'const until = Date.now() + 60_000;\nwhile (!fs.existsSync({json.dumps(str(release))}) && Date.now() < until) {{}}\n'
        f'console.log(fs.existsSync({json.dumps(str(release))}) ? "finished" : "never released");'
    )
    m, _ = k.wait_stream(msg_id, "started|finished|never released", timeout=90, what="no output from the loop")
    assert m.group(0) == "started", "stdout was held back until the loop ended"
    release.write_text("")
    m, _ = k.wait_stream(msg_id, "finished|never released", timeout=90, what="the loop did not end after its release")
    assert m.group(0) == "finished"
    assert k.shell_reply(msg_id)["content"]["status"] == "ok"
    k.collect(msg_id)


def test_stdin_prompt(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    msg_id = k.kc.execute('const answer = prompt("your name? ");\n`hello ${answer}`', allow_stdin=True)
    req = k.kc.get_stdin_msg(timeout=20)
    assert req["msg_type"] == "input_request"
    assert req["content"]["prompt"] == "your name? " and req["content"]["password"] is False
    k.kc.input("Ada")
    reply = k.shell_reply(msg_id)
    assert reply["content"]["status"] == "ok"
    results = [m for m in k.collect(msg_id) if m["msg_type"] == "execute_result"]
    assert results[0]["content"]["data"]["text/plain"] == "'hello Ada'"


def test_stdin_refused_when_frontend_has_none(fresh_kernel: KernelSession) -> None:
    err = error_of(fresh_kernel.run('prompt("x")', allow_stdin=False)[0])
    assert err["ename"] == "StdinNotImplementedError"


def test_interrupt_while_waiting_for_input(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    msg_id = k.kc.execute('prompt("never answered")', allow_stdin=True)
    k.kc.get_stdin_msg(timeout=20)
    k.km.interrupt_kernel()
    assert error_of(k.shell_reply(msg_id))["ename"] == "KeyboardInterrupt"
    assert k.run("3")[0]["content"]["status"] == "ok"


def test_comm_round_trip_and_unknown_target(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    session = k.kc.session
    open_msg = session.msg("comm_open", {"comm_id": "c1", "target_name": "nbscale", "data": {}})
    k.kc.shell_channel.send(open_msg)
    k.collect(open_msg["header"]["msg_id"])
    info_id = k.kc.comm_info()
    comms = k.shell_reply(info_id)["content"]["comms"]
    assert comms == {"c1": {"target_name": "nbscale"}}
    msg = session.msg("comm_msg", {"comm_id": "c1", "data": {"request": "kernel_info"}})
    k.kc.shell_channel.send(msg)
    replies = [m for m in k.collect(msg["header"]["msg_id"]) if m["msg_type"] == "comm_msg"]
    assert replies and replies[0]["content"]["data"]["reply"] == "kernel_info"
    close = session.msg("comm_close", {"comm_id": "c1", "data": {}})
    k.kc.shell_channel.send(close)
    k.collect(close["header"]["msg_id"])
    assert k.shell_reply(k.kc.comm_info())["content"]["comms"] == {}
    bad = session.msg("comm_open", {"comm_id": "c2", "target_name": "no-such-target", "data": {}})
    k.kc.shell_channel.send(bad)
    closes = [m for m in k.collect(bad["header"]["msg_id"]) if m["msg_type"] == "comm_close"]
    assert closes and closes[0]["content"]["comm_id"] == "c2"


def test_forged_and_malformed_messages_are_dropped(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    forger = Session(key=b"not-the-key", username="mallory")
    forged = forger.msg("execute_request", {"code": "globalThis.forged = true", "silent": False, "store_history": True,
                                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    forger.send(k.kc.shell_channel.socket, forged)
    unsigned = Session(key=b"", username="mallory")
    unsigned.send(k.kc.shell_channel.socket, unsigned.msg("execute_request", {"code": "globalThis.forged = true"}))
    k.kc.shell_channel.socket.send_multipart([b"garbage", b"<IDS|MSG>", b"sig", b"{not json"])
    k.kc.shell_channel.socket.send_multipart([b"no delimiter at all"])
    # The kernel handles shell messages in order: anything it answered of the forged ones
    # comes before the reply to this request (a late kernel_info_reply from the client's
    # own start-up handshake may arrive too; it is not ours).
    probe = k.kc.execute("typeof (globalThis as any).forged")
    replies = []
    while not replies or replies[-1]["parent_header"].get("msg_id") != probe:
        try:
            replies.append(k.kc.get_shell_msg(timeout=60))
        except queue.Empty:
            raise TimeoutError("no execute_reply to the probe within 60 s") from None
    reply = replies.pop()
    assert [r["msg_type"] for r in replies if r["msg_type"] != "kernel_info_reply"] == []
    msgs = k.collect(probe)
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["'undefined'"]


def test_unhandled_rejection_does_not_kill_the_kernel(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    k.run('Promise.reject(new Error("nobody catches me")); setTimeout(() => { throw new Error("late") }, 10); 1')
    # A timer set later for later fires later: this cell ends after the "late" throw happened.
    assert k.run("await new Promise((r) => setTimeout(r, 50)); 1 + 1")[0]["content"]["status"] == "ok"
    assert k.run("1 + 1")[0]["content"]["status"] == "ok"
    assert k.km.is_alive()


def test_user_expressions(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    k.run("const xs = [1, 2, 3];")
    reply, _ = k.run("1", user_expressions={"n": "xs.length", "bad": "nope.x"})
    ue = reply["content"]["user_expressions"]
    assert ue["n"]["status"] == "ok" and ue["n"]["data"]["text/plain"] == "3"
    assert ue["bad"]["status"] == "error"


def test_restart_gives_a_fresh_session(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    k.run("const before = 1;")
    k.km.restart_kernel(now=False)
    k.kc.wait_for_ready(timeout=60)
    # The old session's declarations are gone: the checker no longer knows the name.
    err = error_of(k.run("before")[0])
    assert "Cannot find name 'before'" in err["evalue"]
    # a new declaration of the same name is fine after restart
    assert k.run("const before = 2; before")[0]["content"]["status"] == "ok"


def test_node_modules_of_the_notebook_folder_are_importable(tmp_path: Any) -> None:
    pkg = tmp_path / "node_modules" / "tiny-lib"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text('{"name": "tiny-lib", "version": "1.0.0", "main": "index.js", "types": "index.d.ts"}')
    (pkg / "index.js").write_text("exports.triple = (x) => x * 3;\n")
    (pkg / "index.d.ts").write_text("export declare function triple(x: number): number;\n")
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = k.run('import { triple } from "tiny-lib";\ntriple(14)')
        assert reply["content"]["status"] == "ok", reply["content"]
        assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["42"]
        err = error_of(k.run('triple("x")')[0])
        assert "not assignable to parameter of type 'number'" in err["evalue"]
        reply, msgs = k.run('const lines: string[] = [];\nfor await (const x of (async function* () { yield "a"; yield "b"; })()) lines.push(x);\nlines.join("")')
        assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["'ab'"]
    finally:
        k.close()


def test_a_replayed_request_is_dropped(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    k.run("let counter = 0;")
    session = k.kc.session
    msg = session.msg("execute_request", {"code": "counter++;", "silent": False, "store_history": True,
                                           "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    frames = session.serialize(msg, ident=None)
    k.kc.shell_channel.socket.send_multipart(frames)
    assert k.shell_reply(msg["header"]["msg_id"])["content"]["status"] == "ok"
    # The same signed frames again, as an eavesdropper would replay them.
    k.kc.shell_channel.socket.send_multipart(frames)
    # Shell requests are handled in order: had the replay run, it ran before this one.
    _, msgs = k.run("counter")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["1"]

