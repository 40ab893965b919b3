"""Read pytest's JUnit XML and fail unless every required backend ran tests that passed.

Prints the number of tests per backend (passed / skipped / failed), which goes into the issue notes, and for a
backend that did not load (its tests carry the property ``xpnet_backend_unavailable``, set by tests/conftest.py)
the reason it did not. Also checks that the test command in README.md is still the one ci/test.sh runs, so the
README never drifts from CI.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from backends import ALL_BACKENDS as BACKENDS

TEST_COMMAND = "python -m pytest"
UNAVAILABLE = "xpnet_backend_unavailable"  # the JUnit property tests/conftest.py puts on backend-unavailable skips


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
    ap.add_argument(
        "--require", default="numpy,array_api_strict,array_api_strict_device1,array_api_strict_no_float64,torch,jax"
    )
    ap.add_argument("--readme", default=None)
    args = ap.parse_args()

    if not os.path.isfile(args.junit):
        print(f"FAIL: no JUnit report {args.junit!r}: pytest stopped before running tests", file=sys.stderr)
        return 1
    counts: dict[str, Counter] = defaultdict(Counter)
    unavailable: dict[str, str] = {}  # backend -> why it did not load, from the skip message
    for case in ET.parse(args.junit).getroot().iter("testcase"):
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                kind = "failed"
            elif child.tag == "skipped":
                kind = "skipped"
        counts[backend_of(case.get("name", ""))][kind] += 1
        for prop in case.iter("property"):
            if prop.get("name") == UNAVAILABLE and kind == "skipped":
                unavailable.setdefault(prop.get("value", "?"), case.find("skipped").get("message", ""))

    print(f"{'backend':<30}{'passed':>8}{'skipped':>9}{'failed':>8}")
    for b in [*BACKENDS, "backend-free"]:
        c = counts.get(b, Counter())
        note = f"  not run: {unavailable[b]}" if b in unavailable else ""
        print(f"{b:<30}{c['passed']:>8}{c['skipped']:>9}{c['failed']:>8}{note}")

    ok = True
    total = sum(sum(c.values()) for c in counts.values())
    if total == 0:
        print("FAIL: no test ran", file=sys.stderr)
        ok = False
    for b in filter(None, args.require.split(",")):
        c = counts.get(b, Counter())
        # A required backend that failed to load fails in conftest; here: it must have run and passed tests.
        if c["passed"] == 0 or c["failed"] > 0:
            why = f" ({unavailable[b]})" if b in unavailable else ""
            print(f"FAIL: required backend {b!r}: {c['passed']} passed, {c['failed']} failed{why}", file=sys.stderr)
            ok = False
    if args.readme:
        with open(args.readme, encoding="utf-8") as fh:
            if TEST_COMMAND not in fh.read():
                print(f"FAIL: README.md no longer shows the test command {TEST_COMMAND!r}", file=sys.stderr)
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
