"""Adds up the results of every suite (JUnit XML, jest JSON, lint exit code)
into one closing line: `N passed, N failed, N skipped`."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def junit(path: Path) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(reports: Path) -> int:
    total = [0, 0, 0]
    rows = []
    for xml in sorted(reports.glob("*.xml")):
        try:
            counts = junit(xml)
        except ET.ParseError as e:
            counts = (0, 1, 0)
            print(f"{xml.name}: unreadable report ({e})")
        rows.append((xml.stem, *counts))
    jest = reports / "jest.json"
    if jest.exists():
        data = json.loads(jest.read_text())
        rows.append(("jest", data["numPassedTests"], data["numFailedTests"] + data.get("numRuntimeErrorTestSuites", 0), data["numPendingTests"]))
    suites = reports / "suites.txt"
    exit_codes = dict(line.rsplit(" ", 1) for line in suites.read_text().splitlines()) if suites.exists() else {}
    for name, rc in exit_codes.items():
        if name.startswith("lint"):
            rows.append(("lint", 1 if rc == "0" else 0, 0 if rc == "0" else 1, 0))
    print("\nsuite                 passed  failed  skipped")
    for name, p, f, s in rows:
        print(f"{name:<20} {p:>7} {f:>7} {s:>8}")
        total[0] += p
        total[1] += f
        total[2] += s
    # A suite that crashed before writing its report must still count as a failure.
    crashed = [n for n, rc in exit_codes.items() if rc != "0" and not n.startswith("lint")]
    if crashed and total[1] == 0:
        total[1] += len(crashed)
        print(f"suites that failed without a failing test: {', '.join(crashed)}")
    print(f"\n{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
