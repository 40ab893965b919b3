"""The README's code must run as written (a user's first contact with xpnet)."""

import importlib.util
import re
import shlex
from importlib.metadata import metadata
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


def _bash_commands() -> list[list[str]]:
    """The commands in the README's bash blocks, as words (comments dropped, `a && b` split)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while "&&" in words:
                i = words.index("&&")
                commands.append(words[:i])
                words = words[i + 1 :]
            commands.append(words)
    return [c for c in commands if c]


def test_every_readme_command_is_one_the_tests_cover():
    # A new kind of command in the README fails here until a test covers it.
    extras = set(metadata("xpnet").get_all("Provides-Extra") or [])
    for words in _bash_commands():
        if words[:3] == ["pip", "install", "-e"]:
            wanted = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", words[3])
            assert wanted, f"README installs {words[3]!r}, not the package itself"
            unknown = set((wanted.group(1) or "").split(",")) - extras - {""}
            assert not unknown, f"README installs extras {unknown} that pyproject.toml does not define"
        elif words[:3] == ["pip", "install", "torch"]:
            # An unpinned torch from PyPI is the CUDA build (GBs): the README installs the CPU build.
            assert words[3:] == ["--index-url", "https://download.pytorch.org/whl/cpu"], words
        elif words[0] == "python" and words[1].startswith("examples/"):
            assert (ROOT / words[1]).is_file(), words  # tests/test_examples.py runs the examples
        elif words[:3] == ["python", "-m", "pytest"]:
            pass  # test_readme_shows_the_test_command_ci_runs
        elif words[:3] == ["python", "-m", "sphinx"]:
            assert words[3:] == ["-W", "-b", "html", "docs", "docs/_build/html"], words  # test_docs_render builds it
        else:
            raise AssertionError(f"README.md shows {shlex.join(words)!r}, which no test covers")
