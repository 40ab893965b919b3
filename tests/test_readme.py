"""The README's code must run as written (a user's first contact with xpnet)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_examples_run(capsys):
    blocks = _python_blocks()
    assert blocks, "README.md has no python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert re.search(r"numpy: \d+\.\d+", out), out


def test_readme_shows_the_ci_test_command():
    assert "python -m pytest" in README.read_text(encoding="utf-8")
