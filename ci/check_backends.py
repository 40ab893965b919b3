"""Read pytest's JUnit XML and fail unless every required backend ran the tests it is expected to run.

Prints the number of tests per backend (passed / skipped / failed), which goes into the issue notes, and for a
backend that did not load (its tests carry the property ``xpnet_backend_unavailable``, set by tests/conftest.py)
the reason it did not. A test counts for a backend only by its JUnit property ``xpnet_backend`` (tests/conftest.py
puts the ``xp`` fixture's id there), never by its test id; a test without it is backend-free.

Fails when:

- a required backend ran no passing test, or any test failed;
- with ``--baseline FILE`` (CI: ci/skip_baseline.json): a backend of the baseline skipped more tests than its
  ``max_skipped`` or passed fewer than its ``min_passed`` (a mass skip, or tests deselected by ``-m``/``-k``), or a
  required backend has no entry. Added tests pass the check; removing tests or accepting a new skip means
  regenerating the baseline: ``python ci/check_backends.py JUNIT --write-baseline ci/skip_baseline.json``;
- with ``--readme README.md --test-script ci/test.sh``: the test command README.md shows (:func:`readme_test_command`)
  differs from the one ci/test.sh runs (:func:`script_test_command`), so the README never drifts from CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from backends import ALL_BACKENDS as BACKENDS

BACKEND = "xpnet_backend"  # the JUnit property naming a test's backend (tests/conftest.py, the xp fixture's id)
UNAVAILABLE = "xpnet_backend_unavailable"  # the JUnit property tests/conftest.py puts on backend-unavailable skips
BACKEND_FREE = "backend-free"
REQUIRED = "numpy,array_api_strict,array_api_strict_device1,array_api_strict_no_float64,torch,jax"
# The test command: a command whose words start with these (in a bash block of README.md, after the marker in
# ci/test.sh).
PYTEST = ["python", "-m", "pytest"]
# The comment in ci/test.sh whose next line is the test command CI runs.
SCRIPT_MARKER = "# The test command from README.md"


def backend_of(case: ET.Element) -> str:
    """The backend a JUnit testcase ran on: its ``xpnet_backend`` property, else 'backend-free'."""
    for prop in case.iter("property"):
        if prop.get("name") == BACKEND:
            return prop.get("value", BACKEND_FREE)
    return BACKEND_FREE


def count(junit: str) -> tuple[dict[str, Counter], dict[str, str]]:
    """Per backend, the number of passed, skipped and failed tests; and per backend that did not load, why."""
    counts: dict[str, Counter] = defaultdict(Counter)
    unavailable: dict[str, str] = {}  # backend -> why it did not load, from the skip message
    for case in ET.parse(junit).getroot().iter("testcase"):
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                kind = "failed"
            elif child.tag == "skipped" and kind != "failed":
                kind = "skipped"
        counts[backend_of(case)][kind] += 1
        for prop in case.iter("property"):
            if prop.get("name") == UNAVAILABLE and kind == "skipped":
                unavailable.setdefault(prop.get("value", "?"), case.find("skipped").get("message", ""))
    return counts, unavailable


def check_baseline(counts: dict[str, Counter], baseline: dict[str, dict[str, int]], required: list[str]) -> list[str]:
    """Print each baseline backend's counts against its limits; return the failures."""
    failures = []
    print(f"\n{'baseline':<30}{'passed':>8}{'min':>6}{'skipped':>9}{'max':>6}")
    for b in [*required, *(b for b in baseline if b not in required)]:
        c = counts.get(b, Counter())
        if b not in baseline:
            failures.append(f"required backend {b!r} has no entry in the baseline (regenerate it: --write-baseline)")
            continue
        floor, ceiling = baseline[b]["min_passed"], baseline[b]["max_skipped"]
        verdict = []
        if c["skipped"] > ceiling:
            verdict.append(f"{c['skipped'] - ceiling} more skipped")
            failures.append(f"backend {b!r}: {c['skipped']} tests skipped, the baseline allows {ceiling}")
        if c["passed"] < floor:
            verdict.append(f"{floor - c['passed']} fewer passed")
            failures.append(f"backend {b!r}: {c['passed']} tests passed, the baseline expects at least {floor}")
        note = "  FAIL: " + ", ".join(verdict) if verdict else ""
        print(f"{b:<30}{c['passed']:>8}{floor:>6}{c['skipped']:>9}{ceiling:>6}{note}")
    return failures


def make_baseline(counts: dict[str, Counter], required: list[str]) -> dict[str, dict[str, int]]:
    """The baseline of this run: its passed count as the floor and its skipped count as the ceiling, for each
    required backend and the backend-free tests."""
    return {
        b: {"min_passed": counts.get(b, Counter())["passed"], "max_skipped": counts.get(b, Counter())["skipped"]}
        for b in [*required, BACKEND_FREE]
    }


def _commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, as word lists (split at ``&&``, ``||``, ``;`` and ``|``)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # unbalanced quotes: not a command line
        return []
    commands, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    return [c for c in [*commands, current] if c]


def _shell_lines(text: str) -> list[str]:
    """Lines of shell code with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def readme_test_command(readme: str) -> str | None:
    """The test command README.md shows: the first command in a ```bash (or sh, shell, console) block whose words
    begin ``python -m pytest`` (a command with an environment variable or other prefix is an example, not it).
    None when there is none."""
    for block in re.findall(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", readme, flags=re.S | re.M):
        for line in _shell_lines(block):
            for words in _commands(line.removeprefix("$ ")):
                if words[: len(PYTEST)] == PYTEST:
                    return shlex.join(words)
    return None


def script_test_command(script: str) -> str | None:
    """The test command ci/test.sh runs: the line after the comment ``SCRIPT_MARKER``, which must start with
    ``python -m pytest``. None when the marker or such a line is missing."""
    lines = _shell_lines(script)
    for i, line in enumerate(lines):
        if line.strip().startswith(SCRIPT_MARKER):
            following = next((x for x in lines[i + 1 :] if x.strip()), "")
            words = _commands(following)
            if len(words) == 1 and words[0][: len(PYTEST)] == PYTEST:
                return shlex.join(words[0])
            return None
    return None


def check_test_command(readme_path: str, script_path: str) -> list[str]:
    """The failures of the README's test command against the one ci/test.sh runs (none when they are one)."""
    with open(readme_path, encoding="utf-8") as fh:
        shown = readme_test_command(fh.read())
    with open(script_path, encoding="utf-8") as fh:
        run = script_test_command(fh.read())
    print(f"\ntest command: {readme_path} shows {shown!r}, {script_path} runs {run!r}")
    if run is None:
        return [f"{script_path} has no `python -m pytest ...` line right after the comment {SCRIPT_MARKER!r}"]
    if shown is None:
        return [f"{readme_path} shows no `python -m pytest ...` command in a ```bash block"]
    if shown != run:
        return [f"{readme_path} shows the test command {shown!r}, but {script_path} runs {run!r}"]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit")
    ap.add_argument("--require", default=REQUIRED, help="backends that must have run (comma-separated)")
    ap.add_argument("--baseline", help="JSON of {backend: {min_passed, max_skipped}} to check the counts against")
    ap.add_argument("--write-baseline", metavar="FILE", help="write this run's counts as the baseline to FILE")
    ap.add_argument("--readme", help="README.md, whose test command must be the one --test-script runs")
    ap.add_argument("--test-script", default=None, help="ci/test.sh (default: next to this script)")
    args = ap.parse_args(argv)

    if not os.path.isfile(args.junit):
        print(f"FAIL: no JUnit report {args.junit!r}: pytest stopped before running tests", file=sys.stderr)
        return 1
    counts, unavailable = count(args.junit)
    required = [b for b in args.require.split(",") if b]

    print(f"{'backend':<30}{'passed':>8}{'skipped':>9}{'failed':>8}")
    for b in [*BACKENDS, BACKEND_FREE]:
        c = counts.get(b, Counter())
        note = f"  not run: {unavailable[b]}" if b in unavailable else ""
        print(f"{b:<30}{c['passed']:>8}{c['skipped']:>9}{c['failed']:>8}{note}")

    failures = []
    if sum(sum(c.values()) for c in counts.values()) == 0:
        failures.append("no test ran")
    for b in required:
        c = counts.get(b, Counter())
        # A required backend that failed to load fails in conftest; here: it must have run and passed tests.
        if c["passed"] == 0 or c["failed"] > 0:
            why = f" ({unavailable[b]})" if b in unavailable else ""
            failures.append(f"required backend {b!r}: {c['passed']} passed, {c['failed']} failed{why}")
    if counts.get(BACKEND_FREE, Counter())["failed"] > 0:
        failures.append(f"{counts[BACKEND_FREE]['failed']} backend-free tests failed")
    if args.write_baseline:
        if failures:
            failures.append(f"not writing {args.write_baseline}: a baseline comes from a run where every test passed")
        else:
            entries = [f"  {json.dumps(b)}: {json.dumps(v)}" for b, v in make_baseline(counts, required).items()]
            with open(args.write_baseline, "w", encoding="utf-8") as fh:
                fh.write("{\n" + ",\n".join(entries) + "\n}\n")  # one line per backend: diffs show what moved
            print(f"\nwrote the baseline of this run to {args.write_baseline}")
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as fh:
            failures += check_baseline(counts, json.load(fh), required)
    if args.readme:
        script = args.test_script or os.path.join(os.path.dirname(os.path.abspath(__file__)), "test.sh")
        failures += check_test_command(args.readme, script)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
