"""Time conv_forward_fast + conv_backward_fast against one matmul of the same FLOPs and against torch.

    .venv/bin/python benchmarks/bench_conv.py [--backend numpy|torch|cupy] [--device cuda] [--repeats 15]

For each geometry the forward+backward pass costs 3 x 2·N·F·C·HH·WW·H'·W' FLOPs (forward, dx and dw are one
matmul each). The script times, interleaved round by round so that a noisy machine slows all of them alike:

* ``xpnet``    conv_forward_fast + conv_backward_fast, float32;
* ``mm_shaped`` one matmul (F, C·HH·WW) @ (C·HH·WW, 3·N·H'·W'): the forward matmul with 3x the columns, i.e. the
  same FLOPs with the shapes im2col actually hands to BLAS;
* ``mm_square`` one n x n @ n x n matmul with 2n³ equal to the same FLOPs (what BLAS does best);
* ``torch``    torch.nn.functional.conv2d forward + autograd backward, float32, on the backend's device type.

It prints medians over ``--repeats`` rounds (after one warm-up round) and the median of the per-round ratios.
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

from _machine import cpu_name, openblas_kernels

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from xpnet._backend import asarray, backend_name, device, get_namespace, sync
from xpnet.fast_layers import conv_backward_fast, conv_forward_fast

GEOMETRIES = [
    # (N, C, H, W), (F, HH, WW), stride, pad
    ((64, 3, 32, 32), (32, 7, 7), 1, 3),
    ((64, 64, 32, 32), (64, 3, 3), 1, 1),
]


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
        f"fwd+bwd {flops / 1e9:.2f} GFLOP; square matmul n={n}, shaped ({F}, {ckk}) @ ({ckk}, {3 * cols})"
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
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    try:
        xp = get_namespace(args.backend)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_name()}, {os.cpu_count()} CPUs, "
        f"OpenBLAS kernels: {openblas_kernels(np)}\n"
        f"backend {backend_name(xp)}, device {args.device or 'default'}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {threads}, "
        f"{args.repeats} rounds, float32"
    )
    rng = np.random.default_rng(0)
    for x_shape, (F, HH, WW), stride, pad in GEOMETRIES:
        bench_geometry(xp, args.device, x_shape, (F, HH, WW), stride, pad, args.repeats, rng)


if __name__ == "__main__":
    main()
