"""Time one training step of xpnet's models against the same models written in native PyTorch.

    .venv/bin/python benchmarks/bench_step.py [--rounds 15] [--threads 2] [--quick]
    .venv/bin/python benchmarks/bench_step.py --backend cupy            # xpnet on CuPy, native torch on CUDA
    .venv/bin/python benchmarks/bench_step.py --device cuda             # xpnet on torch CUDA tensors too
    .venv/bin/python benchmarks/bench_step.py --backend torch --device cuda  # only xpnet on torch vs native torch

One step is the loss, the gradients of every parameter and an SGD-momentum update (learning rate 1e-3, momentum 0.9),
float32, on CIFAR-shaped inputs (N, 3, 32, 32). Three runs of each model start from the same weights (drawn once by
xpnet from ``np.random.seed(0)``, copied into the torch model):

* ``xpnet/<backend>``  the xpnet model on NumPy (or ``--backend cupy``), with ``xpnet.optim.sgd_momentum``;
* ``xpnet/torch``      the same xpnet model on torch tensors (``--device``: cpu by default);
* ``torch``            the model in native PyTorch eager (``torch.nn`` modules, autograd, ``torch.optim.SGD``).

The three take turns round by round, interleaved, so that a load change on a shared machine slows all of them
alike; each turn starts with a pause of ``--settle`` seconds, then runs one untimed step and one timed step. The
pause is there because a library's worker threads keep spinning on the cores after its last call (OpenBLAS for about
2**28 cycles, ~0.1 s): measured on the 2-core AMD EPYC, xpnet on torch timed right after xpnet on NumPy took 42 ms
a step without the pause and 22-24 ms with it (22 ms when run alone), and native torch after NumPy 24 ms against
11 ms; an untimed step alone (~20 ms) did not outlast the spinning. After ``--warmup`` rounds, the table gives
median step times and the median of the per-round ratios to native torch. Before timing, the first step's losses
of the three runs must agree (the same model, the same init).

Outside the timed rounds, one extra step of each run is measured for:

* ``ops``   ATen operators the step dispatches on torch (``TorchDispatchMode``), for xpnet on torch and for native
  torch, as ``all / kernels``: kernels are the operators that are not views, each a kernel launch on a GPU;
* ``peak``  the most memory the step holds above what it held when it started: ``tracemalloc`` for NumPy (NumPy
  reports its buffers to it), the CPU allocator's events of ``torch.profiler`` for torch on the CPU,
  ``torch.cuda.max_memory_allocated`` on CUDA; not measured for CuPy.

With ``--compile`` (the default but for ``--quick``), three compiled runs join the interleaved rounds, and a
second table gives them with their ratios to native torch eager and to native ``torch.compile``:

* ``xpnet/torch compiled``  the whole xpnet step (``model.loss``, ``sgd_momentum`` on every parameter, the
  batchnorm statistics) compiled as ``Solver(compile=True)`` does it: ``torch.compile(fullgraph=True)`` of one pure
  function (so a graph break fails the run, which then prints its error);
* ``xpnet/jax jit``        the same pure step under ``jax.jit`` (on JAX's default device: its CPU unless jaxlib
  has a GPU);
* ``torch compiled``       native torch with ``torch.compile`` of the module and loss (AOTAutograd compiles the
  backward too) and of ``SGD.step``.

For each: ``compile s``, the wall time of the first two steps (the first traces and compiles; the second runs the
compiled step, or recompiles where its inputs changed kind: native SGD's momentum buffers exist from the second
step on, while xpnet's compiled step starts its state as zeros and traces once); for torch,
``graphs / breaks`` from dynamo's counters, and ``kernels``: on CUDA the GPU kernels one step launches
(``torch.profiler``), on the CPU the kernels Inductor generated while compiling the first two steps
(``torch._inductor.metrics``: every graph the ``graphs`` column counts, so a step that recompiled is counted
twice; calls to BLAS are not among them). A compiled run that fails prints its error type in its cells and the
others go on.

NumPy's BLAS and torch both get ``--threads`` threads (2 by default, the CI machine's cores): the environment
variables of the BLAS libraries are set before NumPy loads, unless already set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import tracemalloc

from _machine import cpu_name, openblas_kernels

_HERE = os.path.dirname(os.path.abspath(__file__))
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# name, (model class, constructor arguments), batch size
CONFIGS = [
    ("ThreeLayerConvNet defaults (32 7x7 filters, hidden 100)", ("cnn", {}), 50),
    ("ThreeLayerConvNet 32 3x3, hidden 500", ("cnn", {"filter_size": 3, "hidden_dim": 500}), 100),
    ("FullyConnectedNet 5x100 batchnorm", ("fc", {"hidden_dims": [100] * 5, "normalization": "batchnorm"}), 200),
    ("FullyConnectedNet [512, 256]", ("fc", {"hidden_dims": [512, 256]}), 100),
]
QUICK_BATCH = 4
LEARNING_RATE, MOMENTUM = 1e-3, 0.9


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        default="numpy",
        choices=["numpy", "cupy", "torch"],
        help="xpnet's first backend; torch: xpnet on torch (--device) against native torch only",
    )
    parser.add_argument("--device", default=None, help="torch device of xpnet/torch and native torch (cpu, cuda)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS and torch threads (default 2)")
    parser.add_argument(
        "--settle", type=float, default=0.2, help="seconds of pause before each turn, for the other library's threads"
    )
    parser.add_argument("--only", default="", help="run only the models whose name contains this text")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the compiled runs (torch.compile, jax.jit); default: yes, but for --quick",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: batch {QUICK_BATCH}, 2 rounds, 1 warm-up, no pause"
    )
    args = parser.parse_args(argv)
    for name in ("rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if not args.settle >= 0:
        parser.error(f"--settle must be >= 0 seconds, got {args.settle}")
    if args.device is None:
        args.device = "cuda" if args.backend == "cupy" else "cpu"
    if args.quick:
        args.rounds, args.warmup, args.settle = 2, 1, 0.0
    if args.compile is None:
        args.compile = not args.quick
    return args


class _Run:
    """One model on one implementation: ``step()`` runs a training step; ``loss`` is the last step's loss."""

    name: str
    loss = None

    def step(self) -> None:
        raise NotImplementedError

    def synced_step(self) -> float:
        start = time.perf_counter()
        self.step()
        self.sync()
        return time.perf_counter() - start

    def sync(self) -> None:
        pass


class _XpnetRun(_Run):
    def __init__(self, kind, kwargs, xp, device, X, y):
        import numpy as np

        from xpnet import asarray, load_namespace
        from xpnet.classifiers.cnn import ThreeLayerConvNet
        from xpnet.classifiers.fc_net import FullyConnectedNet
        from xpnet.optim import sgd_momentum

        load_namespace(xp)  # importing JAX draws from NumPy's global random state: before the seed, not after
        np.random.seed(0)  # the same weights for every backend: xpnet draws them on the host
        if kind == "cnn":
            self.model = ThreeLayerConvNet(dtype="float32", xp=xp, device=device, **kwargs)
        else:
            self.model = FullyConnectedNet(input_dim=3 * 32 * 32, dtype="float32", xp=xp, device=device, **kwargs)
        like = self.model.params["W1"]
        labels = "int32" if xp == "jax" else "int64"  # JAX without x64 has no int64 (it would warn and truncate)
        self.X, self.y = asarray(X, like=like), asarray(y, like=like, dtype=labels)
        self.configs = {k: {"learning_rate": LEARNING_RATE, "momentum": MOMENTUM} for k in self.model.params}
        self._update = sgd_momentum

    def step(self) -> None:
        params = self.model.params
        self.loss, grads = self.model.loss(self.X, self.y)
        for k, w in params.items():
            params[k], self.configs[k] = self._update(w, grads[k], self.configs[k])

    def sync(self) -> None:
        from xpnet._backend import sync

        sync(self.loss)


class _CompiledXpnetRun(_XpnetRun):
    """The xpnet step compiled as ``Solver(compile=True)`` compiles it (``xpnet._compiled.CompiledStep``: loss,
    gradients, updates and batchnorm state in one pure function): ``torch.compile`` with ``fullgraph`` on torch
    tensors, ``jax.jit`` on JAX arrays."""

    graphs = breaks = kernels = None

    def __init__(self, kind, kwargs, xp, device, X, y):
        super().__init__(kind, kwargs, xp, device, X, y)
        from xpnet._compiled import CompiledStep

        self._compiled = CompiledStep(self.model, self._update)
        if xp == "torch":
            import torch

            self.device = torch.device(device)

    def step(self) -> None:
        self.loss, self.configs = self._compiled(self.X, self.y, self.configs)


class _TorchRun(_Run):
    """The xpnet model's architecture in torch.nn, initialised with its weights (CS231n's ``W`` is (in, out), a
    ``Linear`` weight (out, in))."""

    def __init__(self, kind, kwargs, reference, device, X, y):
        import torch
        from torch import nn

        p = {k: torch.tensor(v) for k, v in reference.items()}
        if kind == "cnn":
            F, C, K, _ = p["W1"].shape
            hidden = p["W2"].shape[1]
            layers = [
                nn.Conv2d(C, F, K, padding=(K - 1) // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(p["W2"].shape[0], hidden),
                nn.ReLU(),
                nn.Linear(hidden, p["W3"].shape[1]),
            ]
            weights = [(layers[0], "W1", "b1", False), (layers[4], "W2", "b2", True), (layers[6], "W3", "b3", True)]
            norms = []
        else:
            layers, weights, norms = [nn.Flatten()], [], []
            n_layers = len(kwargs["hidden_dims"]) + 1
            for i in range(1, n_layers + 1):
                w = p[f"W{i}"]
                linear = nn.Linear(w.shape[0], w.shape[1])
                layers.append(linear)
                weights.append((linear, f"W{i}", f"b{i}", True))
                if i < n_layers:
                    if kwargs.get("normalization") == "batchnorm":
                        # xpnet's running-average momentum 0.9 keeps 0.9 of the old value: torch's momentum 0.1.
                        bn = nn.BatchNorm1d(w.shape[1], eps=1e-5, momentum=0.1)
                        layers.append(bn)
                        norms.append((bn, i))
                    layers.append(nn.ReLU())
        with torch.no_grad():
            for module, w, b, transpose in weights:
                module.weight.copy_(p[w].T if transpose else p[w])
                module.bias.copy_(p[b])
            for bn, i in norms:
                bn.weight.copy_(p[f"gamma{i}"])
                bn.bias.copy_(p[f"beta{i}"])
        self.device = torch.device(device)
        self.net = nn.Sequential(*layers).to(self.device)
        self.X = torch.tensor(X, device=self.device)
        self.y = torch.tensor(y, dtype=torch.int64, device=self.device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        self._cross_entropy = torch.nn.functional.cross_entropy
        self._torch = torch
        self._forward = self._loss

    def _loss(self, X, y):
        return self._cross_entropy(self.net(X), y)

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = self._forward(self.X, self.y)
        loss.backward()
        self.opt.step()
        self.loss = loss.detach()

    def sync(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)


class _CompiledTorchRun(_TorchRun):
    """Native torch with ``torch.compile`` of the forward and loss (and so the backward) and of ``SGD.step``."""

    graphs = breaks = kernels = None

    def __init__(self, *args):
        super().__init__(*args)
        import torch

        self._forward = torch.compile(self._loss)
        self.opt.step = torch.compile(self.opt.step)


def _compile_counts(run: _Run) -> None:
    """Run the compiled run's first two steps (compiling) and set its ``compile_s``, dynamo's graph and break counts
    and the number of kernels (see the module docstring)."""
    if isinstance(run, _CompiledXpnetRun) and run._compiled.backend == "jax":  # jax.jit: nothing of torch's
        start = time.perf_counter()
        run.step()
        run.sync()
        run.first_loss = run.loss
        run.step()
        run.sync()
        run.compile_s = time.perf_counter() - start
        return
    from torch._dynamo.utils import counters
    from torch._inductor import metrics

    counters.clear()
    metrics.reset()
    start = time.perf_counter()
    run.step()
    run.sync()
    run.first_loss = run.loss
    run.step()
    run.sync()
    run.compile_s = time.perf_counter() - start
    run.graphs = counters["stats"]["unique_graphs"]
    run.breaks = sum(counters["graph_break"].values())
    run.kernels = metrics.generated_kernel_count
    if run.device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        run.step()
        run.sync()
        with _without_profiler_noise(), profile(activities=[ProfilerActivity.CUDA]) as prof:
            run.step()
            run.sync()
        run.kernels = sum(1 for e in prof.events() if e.device_type.name == "CUDA")


def _count_ops(run: _Run) -> tuple[int, int]:
    """``(ops, kernels)``: the ATen operators one step dispatches, and those of them that are not views (slices,
    reshapes, transposes cost dispatch time on the host but launch nothing on a GPU)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    views = {torch.ops.aten._unsafe_view.default}  # reshape's alias that is not flagged as a view

    class Counter(TorchDispatchMode):
        ops = kernels = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.ops += 1
            Counter.kernels += not (func.is_view or func in views)
            return func(*args, **(kwargs or {}))

    with Counter():
        run.step()
    return Counter.ops, Counter.kernels


@contextlib.contextmanager
def _without_profiler_noise():
    """Drop the lines torch's profiler (C++) writes to file descriptor 2 on every use of it here: Kineto's
    "USDT:... SyncActivityProfilerHandler.cpp ... profiler_start/stop", and the allocator's "Memory block of unknown
    size was allocated before the profiling started" (a step frees the previous step's tensors; the peak counts
    from the step's start, so those frees are expected). Any other line is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                kineto = line.startswith("USDT:") and "Profiler" in line
                if not (kineto or "was allocated before the profiling started" in line):
                    sys.stderr.write(line)


def _peak_bytes(run: _Run, kind: str, device: str) -> int | None:
    """Most bytes one step holds above what was held when it started (None where not measured)."""
    if kind == "numpy":
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            run.step()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    if kind != "torch":
        return None
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run.step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with _without_profiler_noise(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run.step()
    held = peak = 0
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    if not events:  # the profiler recorded no allocation (seen once in ~20 runs): unknown, not zero
        return None
    for event in events:
        held += event.nbytes()
        peak = max(peak, held)
    return peak


def bench_config(label, kind, kwargs, batch, args, xp_name):
    import numpy as np

    from xpnet import to_numpy

    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    # NumPy has one device and CuPy's current one is the GPU: only torch takes --device.
    runs = {}
    if xp_name != "torch":
        runs[f"xpnet/{xp_name}"] = _XpnetRun(kind, kwargs, xp_name, None, X, y)
    runs["xpnet/torch"] = _XpnetRun(kind, kwargs, "torch", args.device, X, y)
    first = next(iter(runs.values()))
    reference_params = {k: to_numpy(v) for k, v in first.model.params.items()}
    runs["torch"] = _TorchRun(kind, kwargs, reference_params, args.device, X, y)
    for run in runs.values():
        run.step()
        run.sync()
    losses = {name: float(to_numpy(run.loss)) for name, run in runs.items()}
    failed: dict[str, str] = {}  # compiled runs that could not compile or run: their error
    if args.compile:
        makers = {
            "xpnet/torch compiled": lambda: _CompiledXpnetRun(kind, kwargs, "torch", args.device, X, y),
            "xpnet/jax jit": lambda: _CompiledXpnetRun(kind, kwargs, "jax", None, X, y),
            "torch compiled": lambda: _CompiledTorchRun(kind, kwargs, reference_params, args.device, X, y),
        }
        for name, make in makers.items():
            try:
                run = make()
                _compile_counts(run)
            except Exception as error:  # reported in the table; the other runs go on
                failed[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
                continue
            runs[name] = run
            losses[name] = float(to_numpy(run.first_loss))
    reference = losses["torch"]
    for value in losses.values():
        if not abs(value - reference) <= 1e-4 * abs(reference) + 1e-6:
            raise RuntimeError(f"{label}: first-step losses differ, so the models differ: {losses}")

    for _ in range(args.warmup):
        for run in runs.values():
            time.sleep(args.settle)
            run.synced_step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            # A pause, so that the library that ran before (OpenBLAS, torch's OpenMP) parks its spinning threads,
            # then an untimed step that wakes this one's: a training loop never switches libraries between steps.
            time.sleep(args.settle)
            run.synced_step()
            times[name].append(run.synced_step())

    def ratio(name, to="torch"):
        return statistics.median(a / b for a, b in zip(times[name], times[to], strict=True))

    eager = [name for name in runs if name in ("torch", f"xpnet/{xp_name}", "xpnet/torch")]
    ops = {name: _count_ops(runs[name]) for name in ("xpnet/torch", "torch")}
    peaks = {
        name: _peak_bytes(runs[name], xp_name if name == f"xpnet/{xp_name}" else "torch", args.device) for name in eager
    }
    compiled = {
        name: {
            "ms": statistics.median(times[name]) * 1e3,
            "ratio": ratio(name),
            "ratio_compiled": ratio(name, "torch compiled") if "torch compiled" in runs else None,
            "compile_s": runs[name].compile_s,
            "graphs": runs[name].graphs,
            "breaks": runs[name].breaks,
            "kernels": runs[name].kernels,
        }
        for name in runs
        if name not in eager
    }
    return {
        "label": f"{label}, batch {batch}",
        "ms": {name: statistics.median(times[name]) * 1e3 for name in eager},
        "ratio": {name: ratio(name) for name in eager if name != "torch"},
        "ops": ops,
        "peak": peaks,
        "losses": losses,
        "compiled": compiled,
        "failed": failed,
    }


def _ops(counts):
    return f"{counts[0]} / {counts[1]}"


def _mb(n):
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def print_table(rows) -> None:
    xpnet = [name for name in rows[0]["ms"] if name != "torch"]  # xpnet/<backend> (unless torch), xpnet/torch
    header = ["model", *(f"{n} ms | ÷ torch" for n in xpnet), "torch ms", "ops (all / kernels) xpnet/torch"]
    header += ["ops torch", *(f"peak MiB {n}" for n in [*xpnet, "torch"])]
    print(f"| {' | '.join(header)} |")
    print("|" + " --- |" * (3 * len(xpnet) + 5))  # model, torch ms, 2 ops, torch peak: 5
    for r in rows:
        ms, ratio, ops, peak = r["ms"], r["ratio"], r["ops"], r["peak"]
        cells = [r["label"], *(f"{ms[n]:.1f} | {ratio[n]:.2f}" for n in xpnet), f"{ms['torch']:.1f}"]
        cells += [_ops(ops["xpnet/torch"]), _ops(ops["torch"]), *(_mb(peak[n]) for n in [*xpnet, "torch"])]
        print(f"| {' | '.join(cells)} |")


def _compiled_cells(row, name, fields, fmt) -> str:
    """The cells of one compiled run in the compiled table: its numbers, or "failed" in each."""
    if name in row["failed"]:
        return " | ".join(["failed"] * len(fields))
    done = row["compiled"][name]
    return " | ".join("n/a" if done[f] is None else fmt.format(done[f]) for f in fields)


def print_compiled_table(rows, device) -> None:
    cuda = device.startswith("cuda")
    kernels = "GPU kernels a step (profiler)" if cuda else "Inductor kernels generated in 2 steps (CPU)"
    names = ["xpnet/torch compiled", "xpnet/jax jit", "torch compiled"]
    header = ["model", *(f"{n} ms | ÷ torch | ÷ torch compiled" for n in names[:2]), "torch compiled ms | ÷ torch"]
    header += [f"compile s {' / '.join(names)}"]
    header += ["graphs / breaks xpnet/torch compiled", "graphs / breaks torch compiled"]
    header += [f"{kernels} xpnet/torch compiled", "torch compiled", "kernels torch eager (ops count)"]
    print(f"| {' | '.join(header)} |")
    print("|" + " --- |" * (len(header) + 5))  # 3 + 3 + 2 cells for the three runs' timings
    for r in rows:
        done, failed = r["compiled"], r["failed"]
        cells = [r["label"]]
        cells += [_compiled_cells(r, n, ("ms", "ratio", "ratio_compiled"), "{:.2f}") for n in names[:2]]
        cells += [_compiled_cells(r, names[2], ("ms", "ratio"), "{:.2f}")]
        cells += [" / ".join("failed" if n in failed else f"{done[n]['compile_s']:.1f}" for n in names)]
        for n in (names[0], names[2]):
            cells.append("failed" if n in failed else f"{done[n]['graphs']} / {done[n]['breaks']}")
        cells += [_compiled_cells(r, n, ("kernels",), "{}") for n in (names[0], names[2])]
        cells += [str(r["ops"]["torch"][1])]
        print(f"| {' | '.join(cells)} |")
    for r in rows:
        for name, error in r["failed"].items():
            print(f"  {r['label']}: {name} failed: {error}")


def main(argv=None) -> None:
    args = _parse(argv)
    for variable in _THREAD_VARIABLES:  # before NumPy loads its BLAS
        os.environ.setdefault(variable, str(args.threads))
    sys.path.insert(0, os.path.join(_HERE, ".."))

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.compile:
        import torch._inductor.config

        # Trace and lower every graph in each run: a graph from Inductor's FX graph cache would hide most of the
        # compile time, and its kernels would not be counted as generated.
        torch._inductor.config.fx_graph_cache = False
    xp_name = args.backend
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_name()}, {os.cpu_count()} CPUs, NumPy {np.__version__} "
        f"(OpenBLAS kernels: {openblas_kernels(np)}), "
        f"torch {torch.__version__}, {args.threads} threads (torch {torch.get_num_threads()}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}), device {args.device}, float32, "
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up, {args.settle} s pause per turn, medians, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    rows = []
    for label, (kind, kwargs), batch in CONFIGS:
        if args.only not in label:
            continue
        rows.append(bench_config(label, kind, kwargs, QUICK_BATCH if args.quick else batch, args, xp_name))
    print("check passed: the first-step losses of the runs agree (relative 1e-4), one model in several forms:")
    for r in rows:
        print(f"  {r['label']}: " + ", ".join(f"{name} {loss:.6f}" for name, loss in r["losses"].items()))
    print_table(rows)
    if args.compile:
        print_compiled_table(rows, str(args.device))
    print(f"load average {os.getloadavg()[0]:.1f} at the end (above {os.cpu_count()}: other jobs shared the cores)")


if __name__ == "__main__":
    main()
