"""Adds up the results of every suite (JUnit XML, jest JSON, the exit codes in
suites.txt) into one closing line: `N passed, N failed, N skipped`
(the last line of scripts/test.sh's output).

Above it: every failed test by name, and every skipped test with its reason.
A skip that gives no reason counts as a failure: a suite that tells the truth
says why it did not test something. A suite that exits non-zero without a
failing test in its report, or writes no report, counts as a failure."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Results node:test's and Playwright's reporters write for a skip without a reason.
NO_REASON = {"", "true", "skipped", "none", "null", "undefined"}


class Tally:
    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.passed = 0
        self.failed: list[str] = []
        self.skipped: list[tuple[str, str]] = []

    def skip(self, name: str, reason: str) -> None:
        reason = " ".join(reason.split())
        if reason.lower().removeprefix("skipped:").strip() in NO_REASON:
            self.failed.append(f"{name} (skipped without a reason)")
        else:
            self.skipped.append((name, reason))


def junit(path: Path) -> Tally:
    t = Tally(path.stem)
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = " ".join(filter(None, [case.get("classname"), case.get("name")])) or "(unnamed test)"
        children = {child.tag: child for child in case}
        bad = children.get("failure", children.get("error"))
        if bad is not None:
            why = " ".join((bad.get("message") or bad.text or "").split())
            t.failed.append(f"{name} -- {why[:300]}" if why else name)
        elif "skipped" in children:
            s = children["skipped"]
            # Playwright gives the reason of test.skip()/test.fixme() as a property, not on <skipped>.
            annotated = [p.get("value", "") for p in case.iter("property") if p.get("name") in ("skip", "fixme")]
            t.skip(name, s.get("message") or (s.text or "").strip() or " ".join(annotated))
        else:
            t.passed += 1
    return t


def jest(path: Path) -> Tally:
    t = Tally("jest")
    data = json.loads(path.read_text())
    for suite in data.get("testResults", []):
        if suite.get("status") == "failed" and not suite.get("assertionResults"):
            t.failed.append(f"{suite.get('name', '?')} (suite did not run: {(suite.get('message') or '').strip()[:200]})")
        for a in suite.get("assertionResults", []):
            name = a.get("fullName") or a.get("title") or "(unnamed test)"
            if a["status"] == "passed":
                t.passed += 1
            elif a["status"] == "failed":
                t.failed.append(name)
            else:  # pending, skipped, todo: jest has no way to give a reason
                t.skip(name, "")
    return t


def main(reports: Path) -> int:
    tallies: list[Tally] = []
    for xml in sorted(reports.glob("*.xml")):
        try:
            tallies.append(junit(xml))
        except ET.ParseError as e:
            bad = Tally(xml.stem)
            bad.failed.append(f"{xml.name}: unreadable report ({e})")
            tallies.append(bad)
    if (reports / "jest.json").exists():
        tallies.append(jest(reports / "jest.json"))
    # suites.txt: one line per suite run, "REPORT<TAB>EXIT CODE<TAB>NAME"; REPORT is the
    # stem of its report (kernel-unit for kernel-unit.xml, jest for jest.json) or "-" for
    # a suite whose exit code is its only result (lint, the checkout check: one test each).
    suites = reports / "suites.txt"
    lines = [line.split("\t", 2) for line in suites.read_text().splitlines() if line.strip()] if suites.exists() else []
    by_report = {t.suite: t for t in tallies}
    for report, rc, name in lines:
        if report == "-":
            t = Tally(name.split(" (")[0])
            if rc == "0":
                t.passed = 1
            else:
                t.failed.append(f"{name} (exit {rc})")
            tallies.append(t)
            continue
        t = by_report.get(report)
        if t is None:
            # A suite that crashed before writing its report still counts as a failure.
            t = Tally(report)
            t.failed.append(f"{name}: exit {rc} and no report ({report})")
            tallies.append(t)
        elif rc != "0" and not t.failed:
            t.failed.append(f"{name}: exit {rc} without a failing test")

    skipped = [(t.suite, n, r) for t in tallies for n, r in t.skipped]
    failed = [(t.suite, n) for t in tallies for n in t.failed]
    if skipped:
        print(f"\nskipped ({len(skipped)}):")
        for suite, name, reason in skipped:
            print(f"  [{suite}] {name} -- {reason}")
    if failed:
        print(f"\nfailed ({len(failed)}):")
        for suite, name in failed:
            print(f"  [{suite}] {name}")
    print("\nsuite                 passed  failed  skipped")
    for t in tallies:
        print(f"{t.suite:<20} {t.passed:>7} {len(t.failed):>7} {len(t.skipped):>8}")
    total_passed = sum(t.passed for t in tallies)
    print(f"\n{total_passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
