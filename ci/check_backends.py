"""Read pytest's JUnit XML and fail unless every required backend ran tests that passed.

Prints the number of tests per backend (passed / skipped / failed), which goes into the issue notes. Also checks
that the test command in README.md is still the one ci/test.sh runs, so the README never drifts from CI.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

BACKENDS = ("numpy", "array_api_strict", "torch", "cupy")
TEST_COMMAND = "python -m pytest"


def backend_of(name: str) -> str:
    """The backend id pytest put in a parametrized test name, e.g. 'test_x[torch-float64]' -> 'torch'."""
    m = re.search(r"\[(.*)\]$", name)
    if not m:
        return "backend-free"
    parts = set(m.group(1).split("-"))
    found = [b for b in BACKENDS if b in parts]
    return found[0] if found else "backend-free"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("junit")
    ap.add_argument("--require", default="numpy,array_api_strict,torch")
    ap.add_argument("--readme", default=None)
    args = ap.parse_args()

    counts: dict[str, Counter] = defaultdict(Counter)
    for case in ET.parse(args.junit).getroot().iter("testcase"):
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                kind = "failed"
            elif child.tag == "skipped":
                kind = "skipped"
        counts[backend_of(case.get("name", ""))][kind] += 1

    print(f"{'backend':<18}{'passed':>8}{'skipped':>9}{'failed':>8}")
    for b in [*BACKENDS, "backend-free"]:
        c = counts.get(b, Counter())
        print(f"{b:<18}{c['passed']:>8}{c['skipped']:>9}{c['failed']:>8}")

    ok = True
    total = sum(sum(c.values()) for c in counts.values())
    if total == 0:
        print("FAIL: no test ran", file=sys.stderr)
        ok = False
    for b in filter(None, args.require.split(",")):
        c = counts.get(b, Counter())
        # A required backend that failed to load fails in conftest; here: it must have run and passed tests.
        if c["passed"] == 0 or c["failed"] > 0:
            print(f"FAIL: required backend {b!r}: {c['passed']} passed, {c['failed']} failed", file=sys.stderr)
            ok = False
    if args.readme:
        with open(args.readme, encoding="utf-8") as fh:
            if TEST_COMMAND not in fh.read():
                print(f"FAIL: README.md no longer shows the test command {TEST_COMMAND!r}", file=sys.stderr)
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
