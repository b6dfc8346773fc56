"""Sum the test results of every tox env into one last line: "N passed, N failed".

Test envs count their pytest cases (from JUnit XML); an env that failed without a
failing case (install error, crash) counts as one failure; envs without tests (lint,
typing) count as one case each.
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_counts(path: str) -> tuple[int, int, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests - failed - skipped, failed, skipped


def main(result_json: str, reports: str) -> int:
    try:
        with open(result_json) as handle:
            envs = json.load(handle).get("testenvs", {})
    except (OSError, ValueError):
        print("no tox result: tox did not run")
        print("0 passed, 1 failed")
        return 1
    total_passed = total_failed = 0
    for name, env in sorted(envs.items()):
        if name.startswith(".") or "result" not in env:
            continue  # the package build env, or an env this run did not select
        result = env["result"]
        ok = bool(result.get("success")) and result.get("exit_code", 1) == 0
        report = os.path.join(reports, f"{name}.xml")
        if os.path.exists(report):
            passed, failed, skipped = junit_counts(report)
            if not ok and failed == 0:
                failed = 1
            note = f"{passed} passed, {failed} failed, {skipped} skipped"
        else:
            passed, failed = (1, 0) if ok else (0, 1)
            note = "ok" if ok else "FAILED"
        total_passed += passed
        total_failed += failed
        print(f"{name:14} {note}")
    print(f"{total_passed} passed, {total_failed} failed")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
