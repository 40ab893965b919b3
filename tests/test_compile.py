"""torch.compile sees one graph: ``model.loss`` and every update rule trace with ``fullgraph=True`` (no graph break,
which is where the code would read an array's value), and the compiled functions give eager's numbers.

Small shapes and dynamo's ``aot_eager`` backend (no C++ compilation) keep the file at a few seconds per case on two
cores; ``explain`` only runs dynamo. Torch only: the other backends have no ``torch.compile``.
"""

import conftest
import pytest

from xpnet import optim
from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet

from helpers import WINDOW_BACKWARD_CASES, window_backward

torch = pytest.importorskip("torch", reason="torch is not installed")
dynamo = pytest.importorskip("torch._dynamo")

# array-api-compat caches its namespace lookups with functools.lru_cache; dynamo traces through the cache and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning")


@pytest.fixture(params=["torch"], autouse=True)
def xp(request):
    """The torch backend as tests/conftest.py loads it, named and parametrized as that fixture is, so that conftest
    labels these tests as torch tests."""
    if "torch" not in conftest.BACKENDS:
        pytest.skip(f"torch is not selected by XPNET_BACKENDS ({conftest.BACKENDS})")
    return conftest.load_backend("torch")


N, D, C = 4, 6, 3


def _fc(normalization, keep, dtype="float64"):
    return FullyConnectedNet(
        [5, 5],
        input_dim=D,
        num_classes=C,
        normalization=normalization,
        dropout_keep_ratio=keep,
        reg=0.1,
        dtype=dtype,
        xp="torch",
    )


def _cnn():
    return ThreeLayerConvNet(
        input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=5, num_classes=C, dtype="float64", xp="torch"
    )


def _batch(model):
    gen = torch.Generator().manual_seed(0)
    shape = (N, D) if isinstance(model, FullyConnectedNet) else (N, 3, 8, 8)
    return torch.randn(*shape, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2, 1])


NORMS = (None, "batchnorm", "layernorm")
MODELS = {**{f"fc-{n}-{'dropout' if k < 1 else 'nodrop'}": (n, k) for n in NORMS for k in (1, 0.5)}, "cnn": None}


def _model(name):
    return _cnn() if name == "cnn" else _fc(*MODELS[name])


def _loss_fn(model):
    """``model.loss`` with its dropout masks as inputs (they must be, under a compiler)."""
    if isinstance(model, FullyConnectedNet) and model.use_dropout:
        return lambda X, y, masks: model.loss(X, y, dropout_masks=masks)
    return lambda X, y, masks: model.loss(X, y)


def _explain(fn, *args):
    dynamo.reset()
    explained = dynamo.explain(fn)(*args)
    reasons = [
        f"{b.reason} at {[(f.filename.rsplit('/', 1)[-1], f.lineno) for f in b.user_stack[-2:]]}"
        for b in explained.break_reasons
    ]
    return explained.graph_count, explained.graph_break_count, reasons


@pytest.mark.parametrize("name", list(MODELS))
def test_model_loss_is_one_graph(name):
    model = _model(name)
    X, y = _batch(model)
    masks = model.draw_dropout_masks(N) if isinstance(model, FullyConnectedNet) else None
    graphs, breaks, reasons = _explain(_loss_fn(model), X, y, masks)
    assert (graphs, breaks) == (1, 0), reasons


@pytest.mark.parametrize("name", ["fc-batchnorm-dropout", "fc-layernorm-nodrop", "cnn"])
def test_compiled_loss_matches_eager(name):
    model = _model(name)
    X, y = _batch(model)
    masks = model.draw_dropout_masks(N) if isinstance(model, FullyConnectedNet) else None
    stats = [dict(p) for p in getattr(model, "bn_params", [])]
    loss, grads = _loss_fn(model)(X, y, masks)
    eager_stats = [dict(p) for p in getattr(model, "bn_params", [])]
    for target, before in zip(getattr(model, "bn_params", []), stats, strict=True):
        target.clear()
        target.update(before)
    dynamo.reset()
    compiled = torch.compile(_loss_fn(model), fullgraph=True, backend="aot_eager")
    closs, cgrads = compiled(X, y, masks)
    torch.testing.assert_close(closs, loss, rtol=1e-10, atol=1e-12)
    assert cgrads.keys() == grads.keys()
    for key in grads:
        torch.testing.assert_close(cgrads[key], grads[key], rtol=1e-10, atol=1e-12, msg=key)
    for compiled_p, eager_p in zip(getattr(model, "bn_params", []), eager_stats, strict=True):
        assert compiled_p.keys() == eager_p.keys()
        for key in set(eager_p) & {"running_mean", "running_var"}:
            torch.testing.assert_close(compiled_p[key], eager_p[key], rtol=1e-10, atol=1e-12)


def test_dropout_under_compile_without_masks_raises():
    model = _fc(None, 0.5)
    X, y = _batch(model)
    dynamo.reset()
    with pytest.raises(Exception, match=r"dropout_param\['mask'\] is required"):
        torch.compile(model.loss, fullgraph=True, backend="eager")(X, y)


RULES = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2},
    "adam": {"learning_rate": 1e-3},
}


@pytest.mark.parametrize("rule", list(RULES))
def test_update_rule_is_one_graph(rule):
    gen = torch.Generator().manual_seed(1)
    w, dw = (torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    graphs, breaks, reasons = _explain(lambda w, dw: getattr(optim, rule)(w, dw, dict(RULES[rule])), w, dw)
    assert (graphs, breaks) == (1, 0), reasons


@pytest.mark.parametrize("rule", list(RULES))
def test_update_rule_traced_state_compiles_once_and_matches_eager(rule):
    """Adam's step count and the learning rate as 0-d tensors: the trace made once the config holds its state
    serves every later step (a Python int ``t`` would recompile at each), and compiled steps give eager's weights."""
    gen = torch.Generator().manual_seed(2)
    w0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    dws = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(5)]
    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    def step(w, dw, config):
        next_w, config = getattr(optim, rule)(w, dw, config)
        return next_w, config

    dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend=counting_backend)
    w, config = w0, {**RULES[rule], "learning_rate": torch.tensor(RULES[rule]["learning_rate"], dtype=torch.float64)}
    if rule == "adam":
        config["t"] = torch.tensor(0)
    ew, econfig = w0, dict(RULES[rule])
    counts = []
    for dw in dws:
        w, config = compiled(w, dw, config)
        ew, econfig = getattr(optim, rule)(ew, dw, econfig)
        counts.append(len(compiles))
    # The first call adds the defaults and state arrays to config (a new dict layout, so one retrace); no more after.
    assert counts[-1] == counts[1] <= 2, counts
    torch.testing.assert_close(w, ew, rtol=1e-12, atol=1e-14)
    if rule == "adam":
        assert int(config["t"]) == econfig["t"] == 5


def _data(seed=0):
    import numpy as np

    rs = np.random.RandomState(seed)
    return {
        "X_train": rs.randn(40, D),
        "y_train": rs.randint(0, C, 40),
        "X_val": rs.randn(10, D),
        "y_val": rs.randint(0, C, 10),
    }


@pytest.mark.parametrize(
    ("normalization", "keep", "rule", "dtype"),
    [
        ("batchnorm", 0.5, "adam", "float64"),
        (None, 1, "sgd_momentum", "float64"),
        ("batchnorm", 0.5, "adam", "float32"),
    ],
)
def test_solver_compile_matches_eager(monkeypatch, normalization, keep, rule, dtype):
    """Solver(compile=True) trains 2 epochs to eager's loss history: dropout masks, batchnorm statistics, Adam's
    step count and a learning-rate decay all go through the one compiled step. In float32 too: Adam's bias
    corrections are taken in float64 under the trace as in an eager step (in float32, 1 - 0.999 is off by 1e-5)."""
    import numpy as np

    from xpnet import _compiled
    from xpnet.solver import Solver

    monkeypatch.setattr(_compiled, "TORCH_BACKEND", "aot_eager")  # the same graph, without C++ compilation
    histories, states, params = {}, {}, {}
    for compiled in (False, True):
        np.random.seed(1)
        model = _fc(normalization, keep, dtype)
        solver = Solver(
            model,
            _data(),
            update_rule=rule,
            optim_config={"learning_rate": 1e-2},
            lr_decay=0.9,
            batch_size=10,
            num_epochs=2,
            verbose=False,
            seed=0,
            compile=compiled,
        )
        dynamo.reset()
        solver.train()
        histories[compiled] = np.array(solver.loss_history)
        params[compiled] = {p: w.numpy() for p, w in model.params.items()}
        states[compiled] = {k: float(v) for k, v in solver.optim_configs["W1"].items() if not hasattr(v, "shape")}
    np.testing.assert_allclose(histories[True], histories[False], rtol=1e-5, atol=1e-8)
    assert len(histories[True]) == 8
    assert states[True] == states[False]  # hyperparameters (decayed) and step counts stay Python numbers
    # The trained weights to within a few roundings of their dtype (Adam's bias correction in float32 was 1e-5 off).
    eps = float(np.finfo(dtype).eps)
    for p in params[False]:
        np.testing.assert_allclose(params[True][p], params[False][p], rtol=8 * eps, atol=8 * eps, err_msg=p)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_solver_compile_refuses_a_backend_without_a_compiler(backend):
    from xpnet.solver import Solver

    pytest.importorskip(backend)
    model = FullyConnectedNet([5], input_dim=D, num_classes=C, dtype="float64", xp=backend)
    with pytest.raises(
        ValueError, match=r"compile=True needs a backend with a compiler .* got the model on " + backend
    ):
        Solver(model, _data(), compile=True, verbose=False)


def test_solver_compile_checkpoints_and_resumes_exactly(monkeypatch, tmp_path):
    """A compiled run stopped after epoch 1 and resumed from its checkpoint (compiled again) repeats the
    uninterrupted compiled run bit for bit: the checkpoint holds what an eager run's holds."""
    import numpy as np

    from xpnet import _compiled
    from xpnet.solver import Solver

    monkeypatch.setattr(_compiled, "TORCH_BACKEND", "aot_eager")

    def solver(num_epochs, name, **kwargs):
        np.random.seed(1)
        return Solver(
            _fc("batchnorm", 0.5),
            _data(),
            update_rule="adam",
            optim_config={"learning_rate": 1e-2},
            lr_decay=0.9,
            batch_size=10,
            num_epochs=num_epochs,
            verbose=False,
            seed=0,
            compile=True,
            checkpoint_name=str(tmp_path / name),
            **kwargs,
        )

    whole = solver(2, "whole")
    whole.train()
    first = solver(1, "part")
    first.train()
    resumed = solver(2, "part", resume_from=str(tmp_path / "part_epoch_1.npz"))
    resumed.train()
    assert resumed.loss_history == whole.loss_history
    assert resumed.optim_configs["W1"]["t"] == whole.optim_configs["W1"]["t"] == 8
    for p in whole.model.params:
        torch.testing.assert_close(resumed.model.params[p], whole.model.params[p], rtol=0, atol=0)


def test_compiled_step_reuses_hyperparameter_tensors_and_keeps_only_the_last_steps(monkeypatch):
    """The 0-d tensors for Python-number hyperparameters are made once per value, not per param per step (on a GPU
    each would be a copy to the device), and reused while the number stays the same; a new number gets a new tensor
    and the step uses it; Adam's rising t leaves only the last step's tensors behind. -0.0 is not 0.0's tensor."""
    import numpy as np

    from xpnet import _compiled

    monkeypatch.setattr(_compiled, "TORCH_BACKEND", "aot_eager")
    np.random.seed(1)
    model = _fc(None, 1)
    step = _compiled.CompiledStep(model, optim.adam)
    X, y = _batch(model)
    configs = {p: {"learning_rate": 1e-2} for p in model.params}
    dynamo.reset()
    for _ in range(3):
        _, configs = step(X, y, configs)
    kept = dict(step._scalars)
    # learning rate, beta1, beta2 and epsilon: one tensor each for all six params; t: one, the last step's.
    assert len(kept) == 5, sorted(kept)
    lr = next(v for (count, _, text, _), v in kept.items() if text == "0.01")
    _, configs = step(X, y, configs)
    assert next(v for (_, _, text, _), v in step._scalars.items() if text == "0.01") is lr
    before = {p: w.clone() for p, w in model.params.items()}
    for config in configs.values():
        config["learning_rate"] = -0.0
    _, configs = step(X, y, configs)
    assert not any(text == "0.01" for _, _, text, _ in step._scalars)
    zero = next(v for (_, _, text, _), v in step._scalars.items() if text == "-0.0")
    assert zero is not lr and float(zero) == 0.0
    for p, w in model.params.items():  # a zero learning rate: Adam moves nothing
        torch.testing.assert_close(w, before[p], rtol=0, atol=0)


def test_compiled_step_state_is_adopted_not_copied_and_matches_eager(monkeypatch):
    """The batchnorm running statistics go into the compiled step as they are and its new ones are put in place;
    they equal an eager step's, and a state array held before the step is not written into."""
    import numpy as np

    from xpnet import _compiled

    monkeypatch.setattr(_compiled, "TORCH_BACKEND", "aot_eager")
    models = []
    for _ in range(2):
        np.random.seed(1)
        models.append(_fc("batchnorm", 1))
    eager, compiled = models
    X, y = _batch(eager)
    step = _compiled.CompiledStep(compiled, optim.sgd)
    configs = {p: {"learning_rate": 1e-2} for p in compiled.params}
    dynamo.reset()
    step(X, y, configs)
    held = compiled._state_arrays()
    copies = {k: v.clone() for k, v in held.items()}
    step(X, y, configs)
    for _ in range(2):
        _, grads = eager.loss(X, y)
        for p, w in eager.params.items():
            eager.params[p], _ = optim.sgd(w, grads[p], {"learning_rate": 1e-2})
    for name, value in compiled.get_state().items():
        torch.testing.assert_close(value, eager.get_state()[name], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(held[name], copies[name], rtol=0, atol=0)
        assert compiled._state_arrays()[name] is not held[name]


@pytest.mark.parametrize(("layer", "kernel", "stride"), WINDOW_BACKWARD_CASES)
def test_backward_passes_write_into_no_array_under_compile(layer, kernel, stride):
    """Under torch.compile the convolution's dx and the overlapping pool's dx are sums of padded windows, not
    KH·KW writes into slices of one array: Inductor compiled such a chain into a kernel that evaluates each write's
    input once per branch (1.07 s for a 3×3 convolution's dx that takes 4 ms eagerly; a 7×7 one never finished).
    The traced graph has no setitem, and the compiled gradients are eager's."""
    import operator

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 9, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, kernel, kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    backward = window_backward(layer, kernel, stride)
    targets = []

    def record(gm, inputs):
        targets.extend(n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method"))
        return gm.forward

    dynamo.reset()
    compiled = torch.compile(backward, fullgraph=True, backend=record)(x, w, b)
    assert targets and operator.setitem not in targets, targets
    for got, expected in zip(compiled, backward(x, w, b), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_is_tracing_is_true_only_under_the_compiler():
    import numpy as np

    from xpnet._backend import is_tracing

    x = torch.ones(3)
    assert not is_tracing(x) and not is_tracing(np.ones(3)) and not is_tracing()
    dynamo.reset()
    traced = torch.compile(lambda x: x + 1 if is_tracing(x) else x - 1, fullgraph=True, backend="eager")
    assert traced(x).tolist() == [2.0, 2.0, 2.0]


def test_example_compile_flag_refuses_numpy_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_fc.py"
    args = ["--backend", "numpy", "--compile", "--epochs", "1", "--num-train", "50", "--quiet"]
    done = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("--compile: compile=True needs a backend with a compiler")
