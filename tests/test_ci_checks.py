"""CI's own checks can fail: ci/check_backends.py on small JUnit reports built here (a mass skip, deselected tests,
a test id that names a backend without running on it, a README command that is not CI's), ci/test.sh's refusal of a
caller's PYTEST_ADDOPTS, and the conftest switches that turn a missing backend or extra into a failure."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import conftest
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_SCRIPT = ROOT / "ci" / "test.sh"

# ci/ is not a package: load the checker CI runs from its file.
_spec = importlib.util.spec_from_file_location("check_backends", ROOT / "ci" / "check_backends.py")
check_backends = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_backends)


def junit(tmp_path: Path, cases: list[tuple[str, str | None, str]]) -> str:
    """A JUnit report of ``cases``: (test name, backend property or None, 'passed' | 'skipped' | 'failed')."""
    body = []
    for name, backend, kind in cases:
        props = f'<properties><property name="xpnet_backend" value="{backend}"/></properties>' if backend else ""
        outcome = {"passed": "", "skipped": '<skipped message="skip"/>', "failed": '<failure message="boom"/>'}[kind]
        body.append(f'<testcase classname="tests.test_x" name={quoteattr(name)}>{props}{outcome}</testcase>')
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{"".join(body)}</testsuite></testsuites>')
    return str(path)


def run(tmp_path, n_passed: dict, n_skipped: dict | None = None, baseline=None, require="numpy,torch"):
    """check_backends on a report with ``n_passed[b]`` passing and ``n_skipped[b]`` skipped tests per backend."""
    cases = []
    for b, n in n_passed.items():
        cases += [(f"test_p{i}[{b}]", None if b == "backend-free" else b, "passed") for i in range(n)]
    for b, n in (n_skipped or {}).items():
        cases += [(f"test_s{i}[{b}]", None if b == "backend-free" else b, "skipped") for i in range(n)]
    args = [junit(tmp_path, cases), "--require", require]
    if baseline is not None:
        (tmp_path / "baseline.json").write_text(json.dumps(baseline))
        args += ["--baseline", str(tmp_path / "baseline.json")]
    return check_backends.main(args)


BASELINE = {
    "numpy": {"min_passed": 10, "max_skipped": 1},
    "torch": {"min_passed": 10, "max_skipped": 0},
    "backend-free": {"min_passed": 3, "max_skipped": 0},
}


def test_the_baseline_run_passes_and_added_tests_do_too(tmp_path, capsys):
    assert run(tmp_path, {"numpy": 10, "torch": 10, "backend-free": 3}, {"numpy": 1}, BASELINE) == 0
    assert run(tmp_path, {"numpy": 14, "torch": 12, "backend-free": 5}, {"numpy": 1}, BASELINE) == 0
    out = capsys.readouterr().out
    assert re.search(r"numpy\s+14\s+10\s+1\s+1\n", out), out  # the comparison is printed: passed, min, skipped, max


def test_a_mass_skip_of_a_required_backend_fails_though_some_of_its_tests_passed(tmp_path, capsys):
    # One passing torch test was all the old check asked for.
    assert run(tmp_path, {"numpy": 10, "torch": 1, "backend-free": 3}, {"torch": 9}, BASELINE) == 1
    assert "FAIL: backend 'torch': 9 tests skipped, the baseline allows 0" in capsys.readouterr().err


def test_deselected_tests_fail_the_passed_floor(tmp_path, capsys):
    # `-m "not slow"` or `-k`: the tests are not skipped, they are absent from the report.
    assert run(tmp_path, {"numpy": 7, "torch": 10, "backend-free": 3}, {"numpy": 1}, BASELINE) == 1
    assert "FAIL: backend 'numpy': 7 tests passed, the baseline expects at least 10" in capsys.readouterr().err
    assert run(tmp_path, {"numpy": 10, "torch": 10, "backend-free": 2}, {"numpy": 1}, BASELINE) == 1


def test_a_required_backend_without_a_baseline_entry_fails(tmp_path, capsys):
    n = {"numpy": 10, "torch": 10, "jax": 5, "backend-free": 3}
    assert run(tmp_path, n, baseline=BASELINE, require="numpy,torch,jax") == 1
    assert "required backend 'jax' has no entry in the baseline" in capsys.readouterr().err


def test_a_test_id_naming_a_backend_is_not_credited_to_it(tmp_path, capsys):
    # A backend-free test parametrized with the string "numpy" (no xpnet_backend property) is not a NumPy test.
    report = junit(tmp_path, [("test_x[numpy]", None, "passed"), ("test_y[torch-float64]", "torch", "passed")])
    assert check_backends.main([report, "--require", "numpy,torch"]) == 1
    assert "required backend 'numpy': 0 passed, 0 failed" in capsys.readouterr().err
    counts, _ = check_backends.count(report)
    assert counts["backend-free"]["passed"] == 1 and counts["torch"]["passed"] == 1
    report = junit(tmp_path, [("test_x", "numpy", "passed"), ("test_y", "torch", "passed")])
    assert check_backends.main([report, "--require", "numpy,torch"]) == 0


def test_a_failed_test_fails_on_any_backend(tmp_path):
    report = junit(tmp_path, [("a", "numpy", "passed"), ("b", "torch", "passed"), ("c", None, "failed")])
    assert check_backends.main([report, "--require", "numpy,torch"]) == 1


def test_write_baseline_records_the_run_and_refuses_a_failing_one(tmp_path, capsys):
    cases = [("a", "numpy", "passed"), ("b", "numpy", "skipped"), ("c", "torch", "passed"), ("d", None, "passed")]
    report = junit(tmp_path, cases)
    out = tmp_path / "written.json"
    assert check_backends.main([report, "--require", "numpy,torch", "--write-baseline", str(out)]) == 0
    assert json.loads(out.read_text()) == {
        "numpy": {"min_passed": 1, "max_skipped": 1},
        "torch": {"min_passed": 1, "max_skipped": 0},
        "backend-free": {"min_passed": 1, "max_skipped": 0},
    }
    assert check_backends.main([report, "--require", "numpy,torch", "--baseline", str(out)]) == 0
    failing = junit(tmp_path, [*cases, ("e", "torch", "failed")])
    out.unlink()
    assert check_backends.main([failing, "--require", "numpy,torch", "--write-baseline", str(out)]) == 1
    assert not out.exists()


README_TEMPLATE = """# x

```python
import xpnet  # python -m pytest in a python block is not a command
```

## Run the tests

```bash
pip install -e ".[test]" && {command}
```

```bash
XPNET_BACKENDS=numpy python -m pytest -x
```
"""
SCRIPT_TEMPLATE = """set -e
export PYTEST_ADDOPTS="--junitxml=x.xml"
{marker}
{command}
python ci/check_backends.py x.xml
"""


@pytest.mark.parametrize(
    "readme_command, script_command, ok",
    [
        ("python -m pytest", "python -m pytest", True),
        ("python  -m pytest  'tests'", "python -m pytest tests", True),  # compared word by word
        ('python -m pytest -m "not slow"', "python -m pytest", False),
        ("python -m pytest", "python -m pytest -m 'not notebooks'", False),
        ("python -m pytest tests/test_conv.py", "python -m pytest", False),
    ],
)
def test_readme_and_ci_test_commands_are_compared_word_by_word(tmp_path, readme_command, script_command, ok):
    readme, script = tmp_path / "README.md", tmp_path / "test.sh"
    readme.write_text(README_TEMPLATE.format(command=readme_command))
    script.write_text(SCRIPT_TEMPLATE.format(marker=check_backends.SCRIPT_MARKER, command=script_command))
    failures = check_backends.check_test_command(str(readme), str(script))
    assert (failures == []) is ok, failures


def test_the_test_commands_are_found_where_defined_and_nowhere_else():
    find = check_backends.readme_test_command
    assert find(README_TEMPLATE.format(command="python -m pytest -q")) == "python -m pytest -q"
    # Only in a python block, or only with an environment prefix: the README shows no plain test command.
    assert find("```python\npython -m pytest\n```\n```bash\nXPNET_BACKENDS=numpy python -m pytest\n```\n") is None
    assert find("```sh\npython -m pytest \\\n  -x\n```\n") == "python -m pytest -x"  # a continued line
    script = check_backends.script_test_command
    assert script(SCRIPT_TEMPLATE.format(marker=check_backends.SCRIPT_MARKER, command="python -m pytest")) == (
        "python -m pytest"
    )
    assert script(SCRIPT_TEMPLATE.format(marker="# the tests", command="python -m pytest")) is None  # no marker
    assert script(SCRIPT_TEMPLATE.format(marker=check_backends.SCRIPT_MARKER, command="pytest || true")) is None


def test_ci_refuses_a_callers_pytest_addopts(tmp_path):
    # PYTHON=false: were the refusal gone, the script would stop at its first use of Python instead of building a
    # virtualenv and running the suite.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XPNET_", "PYTEST_"))}
    env.update(PYTEST_ADDOPTS='-m "not slow"', PYTHON="false", XPNET_CI_VENV=str(tmp_path / "venv"))
    env["XPNET_CI_ARTIFACTS"] = str(tmp_path / "artifacts")
    done = subprocess.run(["bash", str(TEST_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "refusing to run with PYTEST_ADDOPTS='-m \"not slow\"'" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_ci_sets_only_its_junit_option_and_checks_against_a_baseline_of_every_required_backend():
    text = TEST_SCRIPT.read_text(encoding="utf-8")
    assert re.findall(r"^export PYTEST_ADDOPTS=(.*)$", text, flags=re.M) == ['"--junitxml=$REPORT_DIR/junit.xml"']
    required = re.search(r"--require (\S+)", text).group(1).split(",")
    assert re.search(r"^export XPNET_REQUIRE_BACKENDS=\"(.*)\"$", text, flags=re.M).group(1).split(",") == required
    assert "--baseline ci/skip_baseline.json" in text
    baseline = json.loads((ROOT / "ci" / "skip_baseline.json").read_text(encoding="utf-8"))
    assert set(baseline) == {*required, "backend-free"}
    for counts in baseline.values():
        assert set(counts) == {"min_passed", "max_skipped"} and min(counts.values()) >= 0


def test_a_required_extra_that_is_missing_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("XPNET_REQUIRE_EXTRAS", "xpnet_no_such_module")
    # Caught as BaseException: a skip escaping pytest.raises(fail.Exception) would skip this test, not fail it.
    with pytest.raises(BaseException, match="xpnet_no_such_module is required") as raised:
        conftest.importorskip_extra("xpnet_no_such_module")
    assert raised.type is pytest.fail.Exception
    monkeypatch.delenv("XPNET_REQUIRE_EXTRAS")
    with pytest.raises(BaseException, match="not installed") as raised:
        conftest.importorskip_extra("xpnet_no_such_module")
    assert raised.type is pytest.skip.Exception
    assert conftest.importorskip_extra("json") is json


def test_tests_on_a_backend_carry_its_id_and_the_report_counts_them_by_it(tmp_path):
    # End to end: pytest's own JUnit report of two real tests, one with the xp fixture and one without.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XPNET_", "PYTEST_"))}  # CI's junit stays CI's
    env["XPNET_BACKENDS"] = "numpy"
    report = tmp_path / "junit.xml"
    tests = [
        f"tests/test_backend.py::{name}"
        for name in ("test_namespace_of_backend_arrays", "test_namespace_rejects_non_arrays")
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    counts, _ = check_backends.count(str(report))
    assert {b: dict(c) for b, c in counts.items()} == {"numpy": {"passed": 1}, "backend-free": {"passed": 1}}


def test_the_xp_fixture_labels_its_test(xp, request):
    assert (conftest.BACKEND_PROPERTY, request.node.callspec.params["xp"]) in request.node.user_properties
