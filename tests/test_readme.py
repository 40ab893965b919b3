"""The README's code must run as written (a user's first contact with xpnet)."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEST_SCRIPT = ROOT / "ci" / "test.sh"

# ci/ is not a package: load the checker CI runs from its file, so the test and CI apply one rule.
_spec = importlib.util.spec_from_file_location("check_backends", ROOT / "ci" / "check_backends.py")
check_backends = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_backends)


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_examples_run(capsys):
    blocks = _python_blocks()
    assert blocks, "README.md has no python example"
    for code in blocks:
        # As a script runs it: code under `if __name__ == "__main__":` (the sweep example's) runs too.
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert re.search(r"numpy: \d+\.\d+", out), out


def test_readme_shows_the_test_command_ci_runs():
    # The command itself, as ci/check_backends.py extracts it: the first `python -m pytest ...` in a bash block of
    # the README against the line after the marker comment in ci/test.sh (tests/test_ci_checks.py tests both rules).
    shown = check_backends.readme_test_command(README.read_text(encoding="utf-8"))
    run = check_backends.script_test_command(TEST_SCRIPT.read_text(encoding="utf-8"))
    assert run is not None, f"ci/test.sh has no test command after {check_backends.SCRIPT_MARKER!r}"
    assert shown == run, f"README.md shows the test command {shown!r}, ci/test.sh runs {run!r}"
