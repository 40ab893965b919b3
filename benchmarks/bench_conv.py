"""Time conv_forward_fast + conv_backward_fast against one matmul of the same FLOPs and against torch.

    .venv/bin/python benchmarks/bench_conv.py [--backend numpy|torch|cupy] [--device cuda] [--repeats 15] [--quick]

For each geometry the forward+backward pass costs 3 x 2·N·F·C·HH·WW·H'·W' FLOPs (forward, dx and dw are one
matmul each). The script times, interleaved round by round so that a noisy machine slows all of them alike:

* ``xpnet``    conv_forward_fast + conv_backward_fast, float32;
* ``mm_shaped`` one matmul (F, C·HH·WW) @ (C·HH·WW, 3·N·H'·W'): the forward matmul with 3x the columns, i.e. the
  same FLOPs with the shapes im2col actually hands to BLAS;
* ``mm_square`` one n x n @ n x n matmul with 2n³ equal to the same FLOPs (what BLAS does best);
* ``torch``    torch.nn.functional.conv2d forward + autograd backward, float32, on the backend's device type.

Before timing a geometry, the script checks xpnet's result on the very arrays it times: the forward output and
the gradients dx, dw, db against ``torch.nn.functional.conv2d`` and autograd in float64 (a float64 NumPy reference
where torch is not installed). A largest error above ``TOLERANCE`` times the reference's largest magnitude stops the
script with exit status 1 before any timing is printed: a fast wrong convolution is no benchmark.

It prints medians over ``--repeats`` rounds (after one warm-up round) and the median of the per-round ratios.
``--quick`` is a smoke run (small geometries, one of them strided, 2 rounds) for the test suite.
OpenBLAS (NumPy) and torch both use every core by default; ``OMP_NUM_THREADS=1`` in the environment makes both
single-threaded, which gives steadier ratios on a machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from _check import scaled_errors
from _machine import cpu_name, openblas_kernels

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from xpnet._backend import asarray, backend_name, device, load_namespace, sync, to_numpy
from xpnet.fast_layers import conv_backward_fast, conv_forward_fast

GEOMETRIES = [
    # (N, C, H, W), (F, HH, WW), stride, pad
    ((64, 3, 32, 32), (32, 7, 7), 1, 3),
    ((64, 64, 32, 32), (64, 3, 3), 1, 1),
]
QUICK_GEOMETRIES = [((4, 3, 8, 8), (4, 3, 3), 1, 1), ((2, 5, 9, 9), (3, 3, 3), 2, 1)]
# float32 against a float64 reference, as a fraction of the reference's largest magnitude: float32's rounding over
# the longest sum here (dw: N·H'·W' = 65536 terms) stays under 1e-5; a wrong pad, stride, flip, bias or gradient
# is off by order 1.


class ConvMismatch(RuntimeError):
    """xpnet's convolution differs from the reference: the script refuses to time it."""


def _timer(fn):
    """A function timing one call of ``fn``, waiting for queued GPU work on the array it returns."""

    def timed() -> float:
        start = time.perf_counter()
        sync(fn())
        return time.perf_counter() - start

    return timed


def _torch_conv(x_np, w_np, b_np, dout_np, stride, pad, dev):
    import torch

    x = torch.tensor(x_np, device=dev, requires_grad=True)
    w = torch.tensor(w_np, device=dev, requires_grad=True)
    b = torch.tensor(b_np, device=dev, requires_grad=True)
    dout = torch.tensor(dout_np, device=dev)

    def run():
        x.grad = w.grad = b.grad = None
        out = torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad)
        out.backward(dout)
        return x.grad

    return run


def _torch_reference(host, stride, pad):
    """out, dx, dw, db of ``torch.nn.functional.conv2d`` and autograd in float64 on the CPU."""
    import torch

    x, w, b = (torch.tensor(host[k], dtype=torch.float64, requires_grad=True) for k in ("x", "w", "b"))
    out = torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad)
    out.backward(torch.tensor(host["dout"], dtype=torch.float64))
    return {k: t.detach().numpy() for k, t in (("out", out), ("dx", x.grad), ("dw", w.grad), ("db", b.grad))}


def _numpy_reference(host, stride, pad):
    """out, dx, dw, db in float64 with NumPy's sliding windows and einsum (where torch is not installed)."""
    x, w, b, dout = (host[k].astype(np.float64) for k in ("x", "w", "b", "dout"))
    HH, WW = w.shape[2:]
    out_h, out_w = dout.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    dpadded = np.zeros_like(padded)
    for i in range(HH):
        for j in range(WW):
            rows, cols = slice(i, i + stride * out_h, stride), slice(j, j + stride * out_w, stride)
            dpadded[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    return {
        "out": np.einsum("nchwij,fcij->nfhw", windows, w) + b[None, :, None, None],
        "dx": dpadded[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]],
        "dw": np.einsum("nchwij,nfhw->fcij", windows, dout),
        "db": dout.sum(axis=(0, 2, 3)),
    }


def check_conv(x, w, b, dout, host, stride, pad) -> str:
    """Compare xpnet's out, dx, dw, db on the arrays to be timed with a float64 reference; raise ConvMismatch
    naming every result off by more than TOLERANCE of the reference's scale; return a one-line summary."""
    out, cache = conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
    dx, dw, db = conv_backward_fast(dout, cache)
    got = {"out": out, "dx": dx, "dw": dw, "db": db}
    try:
        expected, source = _torch_reference(host, stride, pad), "torch conv2d float64"
    except ImportError:
        expected, source = _numpy_reference(host, stride, pad), "NumPy float64 (torch not installed)"
    errors, wrong = scaled_errors(got, expected, to_numpy)
    if wrong:
        raise ConvMismatch(f"xpnet's convolution differs from {source}: " + "; ".join(wrong))
    summary = ", ".join(f"{name} {err:.1e}" for name, err in errors.items())
    return f"check passed against {source}, largest error / scale: {summary}"


def bench_geometry(xp, dev, x_shape, w_shape, stride, pad, repeats, rng):
    N, C, H, W = x_shape
    F, HH, WW = w_shape
    out_h, out_w = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    ckk, cols = C * HH * WW, N * out_h * out_w
    flops = 3 * 2 * F * ckk * cols

    host = {
        "x": rng.standard_normal(x_shape, dtype=np.float32),
        "w": rng.standard_normal((F, C, HH, WW), dtype=np.float32) / np.float32(np.sqrt(ckk)),
        "b": rng.standard_normal(F, dtype=np.float32),
        "dout": rng.standard_normal((N, F, out_h, out_w), dtype=np.float32),
    }
    x, w, b, dout = (asarray(host[k], xp=xp, device=dev) for k in ("x", "w", "b", "dout"))
    conv_param = {"stride": stride, "pad": pad}
    checked = check_conv(x, w, b, dout, host, stride, pad)  # before any timing: a wrong result is no benchmark

    def conv():
        _, cache = conv_forward_fast(x, w, b, conv_param)
        return conv_backward_fast(dout, cache)[0]

    a = asarray(rng.standard_normal((F, ckk), dtype=np.float32), xp=xp, device=dev)
    bm = asarray(rng.standard_normal((ckk, 3 * cols), dtype=np.float32), xp=xp, device=dev)
    n = round((flops / 2) ** (1 / 3))
    sq = asarray(rng.standard_normal((n, n), dtype=np.float32), xp=xp, device=dev)

    # torch runs on the backend's kind of device: the CPU for NumPy, the GPU for CuPy or torch on CUDA.
    torch_dev = "cuda" if backend_name(xp) == "cupy" or "cuda" in str(device(x)) else "cpu"
    cases = {
        "xpnet": _timer(conv),
        "mm_shaped": _timer(lambda: xp.matmul(a, bm)),
        "mm_square": _timer(lambda: xp.matmul(sq, sq)),
    }
    try:
        cases["torch"] = _timer(_torch_conv(host["x"], host["w"], host["b"], host["dout"], stride, pad, torch_dev))
    except ImportError:
        print("  (torch not installed: no torch reference)")

    for timed in cases.values():  # warm-up: allocations, BLAS thread start, cuDNN autotune
        timed()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, timed in cases.items():
            times[name].append(timed())

    print(
        f"x {x_shape}, w ({F}, {C}, {HH}, {WW}), stride {stride}, pad {pad}: "
        f"fwd+bwd {flops / 1e9:.2f} GFLOP; square matmul n={n}, shaped ({F}, {ckk}) @ ({ckk}, {3 * cols})\n"
        f"  {checked}"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        line = f"  {name:<10} {med * 1e3:8.1f} ms  {flops / med / 1e9:6.1f} GFLOP/s"
        if name != "xpnet":
            ratio = statistics.median(x / y for x, y in zip(times["xpnet"], ts, strict=True))
            line += f"   xpnet / {name} = {ratio:.2f}"
        print(line)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy", help="numpy (default), torch or cupy")
    parser.add_argument("--device", default=None, help="device for the backend's arrays, e.g. cuda (torch)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds after one warm-up (default 15)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small geometries, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 2
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    try:
        xp = load_namespace(args.backend)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    try:
        import torch

        threads, torch_version = torch.get_num_threads(), torch.__version__
    except ImportError:
        threads = torch_version = None
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_name()}, {os.cpu_count()} CPUs, "
        f"NumPy {np.__version__} (OpenBLAS kernels: {openblas_kernels(np)}), torch {torch_version}, "
        f"load average {os.getloadavg()[0]:.1f} at start\n"
        f"backend {backend_name(xp)}, device {args.device or 'default'}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {threads}, "
        f"{args.repeats} rounds, float32"
    )
    rng = np.random.default_rng(0)
    for x_shape, (F, HH, WW), stride, pad in QUICK_GEOMETRIES if args.quick else GEOMETRIES:
        try:
            bench_geometry(xp, args.device, x_shape, (F, HH, WW), stride, pad, args.repeats, rng)
        except ConvMismatch as err:
            sys.exit(f"x {x_shape}, w ({F}, {x_shape[1]}, {HH}, {WW}), stride {stride}, pad {pad}: {err}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: other jobs shared the cores)")


if __name__ == "__main__":
    main()
