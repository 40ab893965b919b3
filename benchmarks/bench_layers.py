"""Time the layers of the benchmarked models one by one, forward and backward, against the same operation in torch.

    .venv/bin/python benchmarks/bench_layers.py [--rounds 15] [--threads 2] [--backend numpy|torch] [--quick]

The layers and shapes are those of ``bench_step.py``'s models, float32: the default ``ThreeLayerConvNet`` at batch 50
(its 3→32 7×7 convolution, with and without the input gradient that the model's first layer skips; its 2×2 max pool;
ReLU on the pooled maps; the 8192→100 affine layer) and the batchnorm of ``FullyConnectedNet`` 5×100 at batch 200.
Each row times, interleaved round by round so that a load change on a shared machine slows both alike:

* ``xpnet``  the layer's xpnet ``*_forward`` and ``*_backward`` (``fast_layers`` for conv and pooling) on
  ``--backend``'s arrays;
* ``torch``  the same operation in native torch (``torch.nn.functional``): the forward builds the autograd graph, as
  in training, and the backward is ``torch.autograd.grad`` of that graph with the same upstream gradient.

Each turn starts with a pause of ``--settle`` seconds and one untimed forward + backward (the other library's worker
threads keep spinning on the cores for ~0.1 s after their last call, see ``bench_step.py``), then times one forward
and one backward. The table gives medians over ``--rounds`` rounds after ``--warmup`` and the medians of the
per-round ratios xpnet ÷ torch.

Before timing, every row's xpnet output and gradients on the arrays it times are checked against torch in float64;
a largest error above ``TOLERANCE`` times the reference's largest magnitude stops the script with exit status 1
before any timing is printed. ``--quick`` is a smoke run (batch 2, 2 rounds, no pause) for the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from _check import TOLERANCE, scaled_errors
from _machine import cpu_name, openblas_kernels

_HERE = os.path.dirname(os.path.abspath(__file__))
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# float32 against float64, as a fraction of the reference's largest magnitude (see bench_conv.py): rounding stays
# under 1e-5 at these sizes, a wrong layer is off by order 1.
QUICK_BATCH = 2


@dataclass
class Layer:
    """One row: ``inputs`` maps each input's name to its shape (what ``grads`` names is differentiated, in the
    order the xpnet backward returns the gradients); the callables take dicts of arrays by those names."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    grads: tuple[str, ...]
    xpnet_forward: Callable
    xpnet_backward: Callable
    torch_forward: Callable


def layers(batch: int, quick: bool) -> list[Layer]:
    from xpnet.fast_layers import conv_backward_fast, conv_forward_fast, max_pool_backward_fast, max_pool_forward_fast
    from xpnet.layers import (
        affine_backward,
        affine_forward,
        batchnorm_backward_alt,
        batchnorm_forward,
        relu_backward,
        relu_forward,
    )

    side = 8 if quick else 32  # the input's height and width
    F, K = 32, 7
    conv = {"stride": 1, "pad": (K - 1) // 2}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    hidden, fc_batch = 100, 4 * batch  # FullyConnectedNet 5x100 batchnorm runs at batch 200 against the CNN's 50

    def conv_forward(a):
        return conv_forward_fast(a["x"], a["w"], a["b"], dict(conv))

    def torch_conv(F_, a):
        return F_.conv2d(a["x"], a["w"], a["b"], padding=conv["pad"])

    conv_inputs = {"x": (batch, 3, side, side), "w": (F, 3, K, K), "b": (F,)}
    pooled = (batch, F, side // 2, side // 2)
    return [
        Layer(
            f"conv 3→{F} {K}×{K} pad {conv['pad']}, x {conv_inputs['x']}: dx, dw, db",
            conv_inputs,
            ("x", "w", "b"),
            conv_forward,
            lambda dout, cache: conv_backward_fast(dout, cache),
            torch_conv,
        ),
        Layer(
            "the same conv, dw and db only (the model's first layer: input_grad=False)",
            conv_inputs,
            ("w", "b"),
            conv_forward,
            lambda dout, cache: conv_backward_fast(dout, cache, input_grad=False)[1:],
            torch_conv,
        ),
        Layer(
            f"max pool 2×2 stride 2, x {(batch, F, side, side)}",
            {"x": (batch, F, side, side)},
            ("x",),
            lambda a: max_pool_forward_fast(a["x"], dict(pool)),
            lambda dout, cache: (max_pool_backward_fast(dout, cache),),
            lambda F_, a: F_.max_pool2d(a["x"], 2, 2),
        ),
        Layer(
            f"ReLU, x {pooled}",
            {"x": pooled},
            ("x",),
            lambda a: relu_forward(a["x"]),
            lambda dout, cache: (relu_backward(dout, cache),),
            lambda F_, a: F_.relu(a["x"]),
        ),
        Layer(
            f"affine {pooled[1] * pooled[2] * pooled[3]}→{hidden}, x {pooled}",
            {"x": pooled, "w": (pooled[1] * pooled[2] * pooled[3], hidden), "b": (hidden,)},
            ("x", "w", "b"),
            lambda a: affine_forward(a["x"], a["w"], a["b"]),
            lambda dout, cache: affine_backward(dout, cache),
            lambda F_, a: a["x"].reshape(a["x"].shape[0], -1) @ a["w"] + a["b"],
        ),
        Layer(
            f"batchnorm (train), x {(fc_batch, hidden)}",
            {"x": (fc_batch, hidden), "gamma": (hidden,), "beta": (hidden,)},
            ("x", "gamma", "beta"),
            lambda a: batchnorm_forward(a["x"], a["gamma"], a["beta"], {"mode": "train"}),
            lambda dout, cache: batchnorm_backward_alt(dout, cache),
            lambda F_, a: F_.batch_norm(a["x"], None, None, a["gamma"], a["beta"], training=True, eps=1e-5),
        ),
    ]


def _host_inputs(layer: Layer, rng) -> dict:
    import numpy as np

    host = {}
    for name, shape in layer.inputs.items():
        a = rng.standard_normal(shape, dtype=np.float32)
        if name == "w":  # fan-in scaling keeps outputs of order 1, so one tolerance fits every row
            a /= np.float32(np.sqrt(np.prod(shape[1:]) if len(shape) == 4 else shape[0]))
        host[name] = a
    return host


class LayerMismatch(RuntimeError):
    """An xpnet layer differs from torch: the script refuses to time it."""


def _check(layer: Layer, xp_inputs: dict, xp_dout, host: dict, dout_host) -> str:
    """Compare xpnet's output and gradients with torch float64 on the same inputs; raise LayerMismatch naming
    what is off by more than TOLERANCE of the reference's scale; return the largest error."""
    import torch
    import torch.nn.functional as F_

    from xpnet import to_numpy

    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in layer.grads) for k, v in host.items()}
    out = layer.torch_forward(F_, t)
    grads = torch.autograd.grad(out, [t[k] for k in layer.grads], torch.tensor(dout_host, dtype=torch.float64))
    expected = {"out": out.detach().numpy()} | {f"d{k}": g.numpy() for k, g in zip(layer.grads, grads, strict=True)}

    got_out, cache = layer.xpnet_forward(xp_inputs)
    got_grads = layer.xpnet_backward(xp_dout, cache)
    got = {"out": got_out} | {f"d{k}": g for k, g in zip(layer.grads, got_grads, strict=True)}
    errors, wrong = scaled_errors(got, expected, to_numpy)
    if wrong:
        raise LayerMismatch(f"{layer.name}: xpnet differs from torch float64: " + "; ".join(wrong))
    return f"{max(errors.values()):.1e}"


def bench_layer(layer: Layer, args, xp, rng) -> dict:
    import torch
    import torch.nn.functional as F_

    from xpnet._backend import asarray, sync

    host = _host_inputs(layer, rng)
    xp_inputs = {k: asarray(v, xp=xp, device=args.device) for k, v in host.items()}
    probe, _ = layer.xpnet_forward(xp_inputs)
    dout_host = rng.standard_normal(tuple(probe.shape), dtype="float32")
    xp_dout = asarray(dout_host, xp=xp, device=args.device)
    checked = _check(layer, xp_inputs, xp_dout, host, dout_host)  # before any timing

    torch_device = "cuda" if "cuda" in str(args.device) else "cpu"
    t = {k: torch.tensor(v, device=torch_device, requires_grad=k in layer.grads) for k, v in host.items()}
    t_dout = torch.tensor(dout_host, device=torch_device)
    t_grads = [t[k] for k in layer.grads]
    state: dict = {}

    def timed(fn, done) -> float:
        start = time.perf_counter()
        result = fn()
        done(result)
        return time.perf_counter() - start

    def torch_sync(_):
        if torch_device == "cuda":
            torch.cuda.synchronize()

    def xpnet_forward():
        state["xpnet"] = layer.xpnet_forward(xp_inputs)
        return state["xpnet"][0]

    def xpnet_backward():
        return layer.xpnet_backward(xp_dout, state["xpnet"][1])[-1]

    def torch_forward():
        state["torch"] = layer.torch_forward(F_, t)
        return state["torch"]

    def torch_backward():
        return torch.autograd.grad(state["torch"], t_grads, t_dout, retain_graph=True)

    turns = {
        "xpnet": (xpnet_forward, xpnet_backward, sync),
        "torch": (torch_forward, torch_backward, torch_sync),
    }
    times: dict[str, list[float]] = {f"{lib} {part}": [] for lib in turns for part in ("fwd", "bwd")}
    for round_ in range(args.warmup + args.rounds):
        for lib, (forward, backward, done) in turns.items():
            time.sleep(args.settle)
            done(forward())  # untimed: wakes this library's threads
            done(backward())
            fwd, bwd = timed(forward, done), timed(backward, done)
            if round_ >= args.warmup:
                times[f"{lib} fwd"].append(fwd)
                times[f"{lib} bwd"].append(bwd)

    def ratio(part):
        return statistics.median(a / b for a, b in zip(times[f"xpnet {part}"], times[f"torch {part}"], strict=True))

    return {
        "name": layer.name,
        "ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "ratio": {part: ratio(part) for part in ("fwd", "bwd")},
        "check": checked,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy", help="xpnet's arrays: numpy (default), torch or cupy")
    parser.add_argument("--device", default=None, help="device of xpnet's arrays and native torch's, e.g. cuda")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS and torch threads (default 2)")
    parser.add_argument("--settle", type=float, default=0.2, help="seconds of pause before each library's turn")
    parser.add_argument("--batch", type=int, default=50, help="the CNN's batch; batchnorm runs at 4x (default 50)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: batch {QUICK_BATCH}, 8x8 images, 2 rounds")
    args = parser.parse_args(argv)
    for name in ("rounds", "threads", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if not args.settle >= 0:
        parser.error(f"--settle must be >= 0 seconds, got {args.settle}")
    if args.quick:
        args.batch, args.rounds, args.warmup, args.settle = QUICK_BATCH, 2, 1, 0.0

    for variable in _THREAD_VARIABLES:  # before NumPy loads its BLAS
        os.environ.setdefault(variable, str(args.threads))
    sys.path.insert(0, os.path.join(_HERE, ".."))
    import numpy as np
    import torch

    from xpnet._backend import backend_name, load_namespace

    torch.set_num_threads(args.threads)
    try:
        xp = load_namespace(args.backend)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_name()}, {os.cpu_count()} CPUs, NumPy {np.__version__} "
        f"(OpenBLAS kernels: {openblas_kernels(np)}), torch {torch.__version__}, {args.threads} threads "
        f"(torch {torch.get_num_threads()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}), "
        f"xpnet on {backend_name(xp)} (device {args.device or 'default'}), float32, {args.rounds} interleaved rounds "
        f"after {args.warmup} warm-up, {args.settle} s pause per turn, medians, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    rng = np.random.default_rng(0)
    rows = []
    for layer in layers(args.batch, args.quick):
        try:
            rows.append(bench_layer(layer, args, xp, rng))
        except LayerMismatch as err:
            sys.exit(str(err))
    print(f"every row checked against torch float64 before timing (largest error / scale, tolerance {TOLERANCE:.0e})")
    print("| layer | xpnet fwd ms | torch fwd ms | fwd ÷ torch | xpnet bwd ms | torch bwd ms | bwd ÷ torch | check |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ms, ratio = r["ms"], r["ratio"]
        print(
            f"| {r['name']} | {ms['xpnet fwd']:.2f} | {ms['torch fwd']:.2f} | {ratio['fwd']:.2f} | "
            f"{ms['xpnet bwd']:.2f} | {ms['torch bwd']:.2f} | {ratio['bwd']:.2f} | {r['check']} |"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: other jobs shared the cores)")


if __name__ == "__main__":
    main()
