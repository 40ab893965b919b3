#!/usr/bin/env bash
# Lint, format, type and docs checks, each of which fails CI on any finding:
#
#   bash ci/lint.sh
#
# 1. ruff check         (rules in pyproject.toml [tool.ruff]) on xpnet/, tests/, examples/, benchmarks/, ci/, docs/
# 2. ruff format --check on the same folders
# 3. mypy               (settings in pyproject.toml [tool.mypy]: xpnet/)
# 4. the documentation  built from scratch with warnings as errors (docs/conf.py), into docs/_build/html
#
# Runs in the current environment, which needs `pip install -e ".[docs,lint]"`. Every check runs even when an
# earlier one fails, so one CI run lists every finding; the exit status is non-zero if any failed. Each check's
# time is printed, and written to $XPNET_LINT_TIMES when that is set.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
PATHS=(xpnet tests examples benchmarks ci docs)

if ! "$PYTHON" -c "import ruff, mypy, sphinx, numpydoc, myst_parser, pydata_sphinx_theme" 2>/dev/null; then
    echo "ci/lint.sh: the lint and docs tools are missing; install them with: pip install -e \".[docs,lint]\"" >&2
    exit 2
fi

failed=()
times=()
check() {  # check NAME CMD...: run, time, remember a failure
    local name=$1 start end status
    shift
    echo "+ $*"
    start=$EPOCHREALTIME
    "$@"
    status=$?
    end=$EPOCHREALTIME
    times+=("$(awk -v n="$name" -v s="$start" -v e="$end" -v r="$([[ $status == 0 ]] && echo ok || echo FAILED)" \
        'BEGIN { printf "%-12s %6.1f s  %s", n, e - s, r }')")
    [[ $status == 0 ]] || failed+=("$name")
}

check ruff "$PYTHON" -m ruff check "${PATHS[@]}"
check ruff-format "$PYTHON" -m ruff format --check "${PATHS[@]}"
check mypy "$PYTHON" -m mypy
# -E: a fresh build environment, so a warning in a page that did not change is reported again.
check docs "$PYTHON" -m sphinx -W --keep-going -E -q -b html docs docs/_build/html

echo
printf '%s\n' "${times[@]}"
if [[ -n "${XPNET_LINT_TIMES:-}" ]]; then
    printf '%s\n' "${times[@]}" >"$XPNET_LINT_TIMES"
fi
if ((${#failed[@]})); then
    echo "ci/lint.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "ci/lint.sh: all checks passed"
