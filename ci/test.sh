#!/usr/bin/env bash
# Make a fresh virtualenv, install xpnet with its test, jax, distributed, docs and lint extras plus the torch CPU build
# (backend and test oracle),
# run exactly the test command README.md shows, fail if a required backend ran no test or skipped more (passed fewer)
# than ci/skip_baseline.json records, then run ci/lint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# pytest reads PYTEST_ADDOPTS from the environment: a caller's `-m "not slow"` or `-k ...` would shrink the run while
# CI still reported green. CI sets only its JUnit option, so it refuses to run with one from outside.
if [[ -n "${PYTEST_ADDOPTS:-}" ]]; then
    echo "ci/test.sh: refusing to run with PYTEST_ADDOPTS='${PYTEST_ADDOPTS}' set by the caller: CI runs the" \
        "README's test command unchanged (unset PYTEST_ADDOPTS; to run fewer tests, run pytest yourself)" >&2
    exit 2
fi

VENV="${XPNET_CI_VENV:-.ci-venv}"
REPORT_DIR="${XPNET_CI_ARTIFACTS:-ci-artifacts}"
PYTHON="${PYTHON:-python3}"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
# torch is pinned: the pinned version is the local CPU build; an unpinned one would pull GBs of CUDA packages.
python -m pip install --quiet -e ".[test,jax,distributed,docs,lint]" "torch==2.13.0"
python -m pip list --format=freeze | grep -iE '^(numpy|array.api|torch|jax|jaxlib|pytest|hypothesis)' || true

mkdir -p "$REPORT_DIR"
export XPNET_REQUIRE_BACKENDS="numpy,array_api_strict,array_api_strict_device1,array_api_strict_no_float64,torch,jax"
# The optional modules whose tests must run, not skip (tests/conftest.py: a missing one stops the run).
export XPNET_REQUIRE_EXTRAS="distributed"
export PYTEST_ADDOPTS="--junitxml=$REPORT_DIR/junit.xml"

# The test command from README.md (kept identical; ci/check_backends.py checks that it still is).
python -m pytest

python ci/check_backends.py "$REPORT_DIR/junit.xml" \
    --require numpy,array_api_strict,array_api_strict_device1,array_api_strict_no_float64,torch,jax \
    --baseline ci/skip_baseline.json --readme README.md --test-script ci/test.sh

# Lint, format, types and the docs build (warnings as errors): every check runs, any finding fails CI.
bash ci/lint.sh
