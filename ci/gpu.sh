#!/usr/bin/env bash
# The whole GPU check in one command, on a machine with an NVIDIA GPU:
#
#   bash ci/gpu.sh [REPORT.md]
#
# 1. install: xpnet from this checkout (on PYTHONPATH, no build step) and whatever of its pure-Python dependencies
#    the image lacks, from wheels in .whl/ when there is no package index (see CONTRIBUTING.md for how to fetch
#    them); CuPy, torch (CUDA) and JAX come from the machine;
# 2. the test suite on cupy and torch on cuda (`XPNET_BACKENDS=cupy,torch_cuda`), both required to run, and where JAX
#    sees a GPU, tests/test_jax.py's accelerator test on it (required to pass);
# 3. the benchmarks on the GPU: benchmarks/bench_conv.py and benchmarks/bench_step.py on cupy and on torch cuda
#    (the torch run with its compiled columns: xpnet and native torch.compile, xpnet jax.jit, compile times,
#    graph breaks and GPU kernels a step);
# 4. the example on `--backend cupy`;
# then appends a dated section with the device, library versions, per-backend test counts and every benchmark
# table to REPORT.md (default BENCHMARKS.md). Logs go to $XPNET_GPU_LOGS (default gpu-logs/).
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT="${1:-BENCHMARKS.md}"
LOGS="${XPNET_GPU_LOGS:-gpu-logs}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$LOGS"

# --- 1. install -------------------------------------------------------------------------------------------------
missing=$("$PYTHON" - <<'EOF'
import importlib.util
need = ["array_api_compat", "array_api_extra", "array_api_strict", "hypothesis", "pytest", "tqdm", "matplotlib"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [[ -n "$missing" ]]; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        echo "installing from .whl/: $missing"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/xpnet-site .whl/*.whl
        export PYTHONPATH="/tmp/xpnet-site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "installing from the package index: $missing"
        "$PYTHON" -m pip install -q -e ".[test]"
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

device=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)
versions=$("$PYTHON" - <<'EOF'
import importlib
parts = []
for name in ["numpy", "cupy", "torch", "jax", "array_api_compat", "array_api_extra", "array_api_strict"]:
    try:
        parts.append(f"{name} {importlib.import_module(name).__version__}")
    except ImportError:
        parts.append(f"{name} missing")
print(", ".join(parts))
EOF
)
echo "device: $device"
echo "versions: $versions"

# --- 2. tests ---------------------------------------------------------------------------------------------------
status=0
XPNET_BACKENDS=cupy,torch_cuda XPNET_REQUIRE_BACKENDS=cupy,torch_cuda \
    "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$LOGS/gpu-junit.xml" 2>&1 | tee "$LOGS/tests.log" \
    || status=1
tests=$("$PYTHON" ci/check_backends.py "$LOGS/gpu-junit.xml" --require cupy,torch_cuda 2>&1) || status=1
echo "$tests"
# JAX on the GPU, where its jaxlib has one: tests/test_jax.py's accelerator test (skipped on CPU-only machines, so no
# other run can show it) must run and pass here; check_backends fails a skip (jax: 0 passed).
if "$PYTHON" -c "import jax, sys; sys.exit(not any(d.platform != 'cpu' for d in jax.devices()))" >/dev/null 2>&1; then
    XPNET_BACKENDS=jax XPNET_REQUIRE_BACKENDS=jax "$PYTHON" -m pytest -q -p no:cacheprovider \
        --junitxml="$LOGS/jax-gpu-junit.xml" tests/test_jax.py -k accelerator 2>&1 | tee "$LOGS/jax-tests.log" || status=1
    jax_tests=$("$PYTHON" ci/check_backends.py "$LOGS/jax-gpu-junit.xml" --require jax 2>&1) || status=1
else
    jax_tests="JAX sees no GPU here (jax not installed, or a CPU-only jaxlib): its accelerator test did not run"
fi
echo "$jax_tests"

# --- 3. benchmarks, 4. example ----------------------------------------------------------------------------------
run() {  # run NAME CMD...: log to $LOGS/NAME.log; a failure is recorded, the other runs still happen
    local name=$1
    shift
    echo "+ $*"
    if ! "$@" 2>&1 | tee "$LOGS/$name.log"; then
        echo "FAILED: $*" | tee -a "$LOGS/$name.log"
        status=1
    fi
}
run conv_cupy "$PYTHON" benchmarks/bench_conv.py --backend cupy
run conv_torch_cuda "$PYTHON" benchmarks/bench_conv.py --backend torch --device cuda
if [[ -f benchmarks/bench_step.py ]]; then
    # The compiled runs are the same in both, so only the torch run times them (compiling takes minutes).
    run step_cupy "$PYTHON" benchmarks/bench_step.py --backend cupy --no-compile
    run step_torch_cuda "$PYTHON" benchmarks/bench_step.py --backend torch --device cuda
fi
run example_cupy "$PYTHON" examples/train_cnn.py --backend cupy --quiet

# --- report -----------------------------------------------------------------------------------------------------
{
    echo
    echo "## GPU check, $(date -u +%Y-%m-%d) on ${device} (\`bash ci/gpu.sh\`)"
    echo
    echo "Versions: ${versions}. Exit status of the check: ${status} (0: every step passed)."
    echo
    echo "### Tests (XPNET_BACKENDS=cupy,torch_cuda)"
    echo
    echo "$tests"
    echo
    echo "### JAX accelerator test (XPNET_BACKENDS=jax, tests/test_jax.py -k accelerator)"
    echo
    echo "$jax_tests"
    for log in "$LOGS"/conv_*.log "$LOGS"/step_*.log "$LOGS"/example_*.log; do
        [[ -f "$log" ]] || continue
        echo
        echo "### $(basename "$log" .log)"
        echo
        echo '```'
        cat "$log"
        echo '```'
    done
} >>"$REPORT"
echo "appended the results to $REPORT (exit status $status)"
exit "$status"
