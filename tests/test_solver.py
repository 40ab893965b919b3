"""Solver: CS231n's behaviour on every backend, checkpoints, exact resume, cross-backend resume, divergence."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import load_backend

from xpnet import optim
from xpnet._backend import device, namespace
from xpnet._npz import read_npz as load_npz
from xpnet._random import host_integers, host_rng, random_uniform, rng_from_state, rng_state
from xpnet.solver import NonFiniteLossError, NonFiniteLossWarning, Solver, checkpoint_epoch

from helpers import blobs, device_under_test, to_np, to_xp, widest_float

D, H, C = 6, 16, 3
N_TRAIN, N_VAL, BATCH = 200, 60, 20  # 10 iterations per epoch


def make_data(seed: int = 0) -> dict:
    return blobs(n_train=N_TRAIN, n_val=N_VAL, dim=D, classes=C, seed=seed)


DATA = make_data()


class TinyNet:
    """affine - batchnorm - relu - [dropout] - affine - softmax, written with Array API calls only, in ``dtype``
    (default: float64 where the device under test has it, else float32).

    Like CS231n's models: weights drawn from NumPy's global state, running statistics in ``bn_params`` dicts,
    unseeded dropout masks from the global state, test mode when ``y`` is None.
    """

    def __init__(self, xp, keep: float = 1.0, weight_scale: float = 0.5, dtype: str | None = None):
        dtype = dtype or widest_float(xp)  # the Solver's behaviour needs no particular precision

        def put(a):
            return to_xp(a, xp, dtype=dtype)

        self.params = {
            "W1": put(weight_scale * np.random.randn(D, H)),
            "b1": put(np.zeros(H)),
            "gamma1": put(np.ones(H)),
            "beta1": put(np.zeros(H)),
            "W2": put(weight_scale * np.random.randn(H, C)),
            "b2": put(np.zeros(C)),
        }
        self.bn_params = [{"mode": "train", "running_mean": put(np.zeros(H)), "running_var": put(np.ones(H))}]
        self.keep = keep

    def loss(self, X, y=None):
        p, bn = self.params, self.bn_params[0]
        xp = namespace(X, *p.values())
        h = X @ p["W1"] + p["b1"]
        if y is None:
            mu, var = bn["running_mean"], bn["running_var"]
        else:
            mu, var = xp.mean(h, axis=0), xp.var(h, axis=0)
            bn["running_mean"] = 0.9 * bn["running_mean"] + 0.1 * mu
            bn["running_var"] = 0.9 * bn["running_var"] + 0.1 * var
        inv_std = 1.0 / xp.sqrt(var + 1e-5)
        xhat = (h - mu) * inv_std
        a = p["gamma1"] * xhat + p["beta1"]
        relu = xp.astype(a > 0, a.dtype)
        r = a * relu
        drop = None
        if y is not None and self.keep < 1:
            drop = xp.astype(random_uniform(r.shape, like=r) < self.keep, r.dtype) / self.keep
            r = r * drop
        scores = r @ p["W2"] + p["b2"]
        if y is None:
            return scores

        n = X.shape[0]
        shifted = scores - xp.max(scores, axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        classes = xp.arange(C, dtype=y.dtype, device=device(y))
        onehot = xp.astype(xp.expand_dims(y, axis=1) == xp.expand_dims(classes, axis=0), scores.dtype)
        loss = -xp.sum(onehot * log_probs) / n
        dscores = (xp.exp(log_probs) - onehot) / n
        grads = {"W2": xp.matrix_transpose(r) @ dscores, "b2": xp.sum(dscores, axis=0)}
        dr = dscores @ xp.matrix_transpose(p["W2"])
        da = (dr if drop is None else dr * drop) * relu
        grads["gamma1"], grads["beta1"] = xp.sum(da * xhat, axis=0), xp.sum(da, axis=0)
        dxhat = da * p["gamma1"]
        dh = inv_std / n * (n * dxhat - xp.sum(dxhat, axis=0) - xhat * xp.sum(dxhat * xhat, axis=0))
        grads["W1"], grads["b1"] = xp.matrix_transpose(X) @ dh, xp.sum(dh, axis=0)
        return loss, grads


class StatefulNet(TinyNet):
    """TinyNet exposing its running statistics through the get_state / set_state contract."""

    def get_state(self) -> dict:
        return {k: self.bn_params[0][k] for k in ("running_mean", "running_var")}

    def set_state(self, state: dict) -> None:
        self.bn_params[0].update(state)


def make_solver(model, **kwargs) -> Solver:
    settings = {"update_rule": "adam", "optim_config": {"learning_rate": 1e-2}, "batch_size": BATCH}
    settings.update(verbose=False, seed=0, num_epochs=2)
    settings.update(kwargs)
    return Solver(model, DATA, **settings)


def snapshot(solver: Solver) -> dict:
    """Everything a resumed run must reproduce, as NumPy arrays / Python values."""
    model = solver.model
    out = {f"param {k}": to_np(v) for k, v in model.params.items()}
    out.update({f"state {k}": to_np(v) for k, v in model.get_state().items()})
    for name, config in solver.optim_configs.items():
        for key, value in config.items():
            out[f"optim {name} {key}"] = value if isinstance(value, (int, float)) else to_np(value)
    out["loss_history"] = np.asarray(solver.loss_history)
    out["train_acc_history"] = np.asarray(solver.train_acc_history)
    out["val_acc_history"] = np.asarray(solver.val_acc_history)
    out["best_val_acc"] = solver.best_val_acc
    out["epoch"] = solver.epoch
    return out


def assert_same_run(actual: dict, expected: dict, **tol) -> None:
    assert sorted(actual) == sorted(expected)
    for key in expected:
        if tol:
            np.testing.assert_allclose(actual[key], expected[key], err_msg=key, **tol)
        else:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_trains_to_good_accuracy_with_cs231n_histories(xp):
    np.random.seed(0)
    solver = make_solver(TinyNet(xp), num_epochs=3)  # float32 on the no_float64 device
    assert namespace(solver.X_train) is xp and namespace(solver.y_val) is xp, "data must move to the model's backend"
    assert solver.X_train.dtype == solver.model.params["W1"].dtype and solver.y_train.dtype == xp.int64
    assert device(solver.X_train) == device(solver.model.params["W1"]), "data must move to the model's device"
    solver.train()
    assert solver.epoch == 3
    assert len(solver.loss_history) == 3 * N_TRAIN // BATCH
    assert all(type(v) is float for v in solver.loss_history)
    # One accuracy check after the first iteration, then one per epoch.
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4
    assert all(type(v) is float for v in solver.train_acc_history + solver.val_acc_history)
    assert solver.best_val_acc >= 0.95
    assert np.mean(solver.loss_history[-5:]) < 0.5 * np.mean(solver.loss_history[:3])
    for name, config in solver.optim_configs.items():
        assert config["t"] == 30 and namespace(config["m"]) is xp, name


def test_best_params_restored_at_the_end(xp):
    """An update rule that zeroes the weights after two epochs: the good params of epoch 2 must come back."""

    def rule(w, dw, config):
        # adam's step count says how far training got (a key of our own would be refused by optim.adam)
        if config.get("t", 0) >= 2 * N_TRAIN // BATCH:
            return w * 0.0, config
        return optim.adam(w, dw, config)

    np.random.seed(0)
    solver = make_solver(TinyNet(xp), update_rule=rule, num_epochs=3)
    solver.train()
    assert solver.val_acc_history[-1] < 0.5 <= solver.best_val_acc, "the sabotaged last epoch must look bad"
    assert solver.best_val_acc == max(solver.val_acc_history)
    for name, value in solver.model.params.items():
        np.testing.assert_array_equal(to_np(value), to_np(solver.best_params[name]), err_msg=name)
    assert solver.check_accuracy(DATA["X_val"], DATA["y_val"]) == solver.best_val_acc


def test_lr_decay_applied_once_per_epoch(xp, tmp_path):
    np.random.seed(0)
    solver = make_solver(
        TinyNet(xp),
        update_rule="sgd_momentum",
        optim_config={"learning_rate": 0.1},
        lr_decay=0.5,
        num_epochs=3,
        checkpoint_name=str(tmp_path / "run"),
    )
    solver.train()
    for epoch in (1, 2, 3):
        _, meta = load_npz(tmp_path / f"run_epoch_{epoch}.npz")
        assert meta["tree"]["optim_configs"]["W1"]["learning_rate"] == pytest.approx(0.1 * 0.5**epoch, rel=1e-15)
    for name, config in solver.optim_configs.items():
        assert config["learning_rate"] == pytest.approx(0.0125, rel=1e-15), name
        assert namespace(config["velocity"]) is xp


def test_check_accuracy_in_batches_in_test_mode(xp):
    np.random.seed(0)
    model = TinyNet(xp, keep=0.5)
    solver = make_solver(model, num_epochs=1)
    solver.train()
    X, y = DATA["X_val"], DATA["y_val"]
    before = np.random.get_state(legacy=False)
    acc = solver.check_accuracy(X, y, batch_size=7)  # NumPy input, batches that do not divide N
    assert type(acc) is float
    X_xp = to_xp(X, xp, dtype=model.params["W1"].dtype)
    expected = float(np.mean(np.argmax(to_np(model.loss(X_xp)), axis=1) == y))
    assert acc == expected == solver.check_accuracy(X_xp, to_xp(y, xp))
    after = np.random.get_state(legacy=False)
    np.testing.assert_array_equal(after["state"]["key"], before["state"]["key"])
    assert after["state"]["pos"] == before["state"]["pos"], "test mode must draw no dropout masks"
    # Subsampling draws from the Solver's own sampler: re-seeding it repeats the draw.
    solver._rng = host_rng(5)
    first = solver.check_accuracy(X, y, num_samples=11)
    solver._rng = host_rng(5)
    assert solver.check_accuracy(X, y, num_samples=11) == first


def test_seed_makes_runs_reproducible(xp):
    runs = []
    for seed in (0, 0, 1):
        np.random.seed(0)
        solver = make_solver(TinyNet(xp, keep=0.8), seed=seed, num_epochs=1)
        solver.train()
        runs.append(solver.loss_history)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2], "a different sampler seed must draw different minibatches"
    # Without a seed the sampler is NumPy's global state, as in CS231n: np.random.seed(231) repeats a run.
    unseeded = []
    for _ in range(2):
        np.random.seed(231)
        solver = make_solver(TinyNet(xp, keep=0.8), seed=None, num_epochs=1)
        solver.train()
        unseeded.append(solver.loss_history)
    assert unseeded[0] == unseeded[1]


def test_checkpoints_are_written_atomically_with_epoch_names(xp, tmp_path):
    np.random.seed(0)
    solver = make_solver(StatefulNet(xp), num_epochs=2, checkpoint_name=str(tmp_path / "ckpt"))
    solver.train()
    assert sorted(os.listdir(tmp_path)) == ["ckpt_epoch_1.npz", "ckpt_epoch_2.npz"], "no temporary files left"
    arrays, meta = load_npz(tmp_path / "ckpt_epoch_1.npz")
    assert (meta["epoch"], meta["iteration"], meta["update_rule"]) == (1, N_TRAIN // BATCH, "adam")
    assert meta["tree"]["optim_configs"]["W1"]["t"] == N_TRAIN // BATCH
    assert len(meta["loss_history"]) == N_TRAIN // BATCH and len(meta["val_acc_history"]) == 2
    expected = {"params/W1", "best_params/W1", "optim/W1/m", "optim/W1/v", "model_state/running_mean"}
    assert expected <= set(arrays)
    solver.save_checkpoint(tmp_path / "manual.npz")
    arrays, meta = load_npz(tmp_path / "manual.npz")
    np.testing.assert_array_equal(arrays["params/W2"], to_np(solver.model.params["W2"]))
    assert meta["epoch"] == 2 and meta["best_val_acc"] == solver.best_val_acc
    json.dumps(meta)  # the metadata is plain JSON
    assert [checkpoint_epoch(tmp_path / f"{name}.npz") for name in ("ckpt_epoch_1", "manual")] == [1, 2]


def test_checkpoint_epoch_refuses_what_is_no_checkpoint(tmp_path):
    from xpnet.classifiers import FullyConnectedNet

    with pytest.raises(FileNotFoundError, match="no such file"):
        checkpoint_epoch(tmp_path / "missing.npz")
    FullyConnectedNet([3], input_dim=D, num_classes=C).save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"model.npz: not an xpnet Solver checkpoint .*: its format is 'xpnet.model'"):
        checkpoint_epoch(tmp_path / "model.npz")
    (tmp_path / "text.npz").write_text("epoch 3")
    with pytest.raises(ValueError, match=r"text.npz: not a zip archive"):
        checkpoint_epoch(tmp_path / "text.npz")


# float32 once, with the global-state sampler (NumPy's global state is restored too): each dtype costs JAX compiles.
@pytest.mark.parametrize(
    ("seed", "dtype"), [(0, "float64"), (None, "float64"), (None, "float32")], ids=["seeded", "global-state", "float32"]
)
def test_resume_repeats_the_uninterrupted_run_exactly(xp, tmp_path, seed, dtype):
    """Batchnorm running stats, dropout masks from the global state, adam state, lr decay and subsampled
    accuracy checks all continue exactly where a run that stopped after epoch 2 left them, in either dtype."""
    kwargs = {"lr_decay": 0.9, "num_train_samples": 50, "seed": seed}
    np.random.seed(0)
    full = make_solver(StatefulNet(xp, keep=0.7, dtype=dtype), num_epochs=4, **kwargs)
    full.train()

    np.random.seed(0)
    stopped = make_solver(
        StatefulNet(xp, keep=0.7, dtype=dtype), num_epochs=2, checkpoint_name=str(tmp_path / "run"), **kwargs
    )
    stopped.train()
    np.random.seed(12345)  # whatever happened in between: the checkpoint's random states are restored
    resumed = make_solver(
        StatefulNet(xp, keep=0.7, dtype=dtype),
        num_epochs=4,
        resume_from=tmp_path / "run_epoch_2.npz",
        checkpoint_name=str(tmp_path / "run"),
        **kwargs,
    )
    assert resumed.epoch == 2 and len(resumed.loss_history) == 2 * N_TRAIN // BATCH
    resumed.train()
    assert_same_run(snapshot(resumed), snapshot(full))
    assert (tmp_path / "run_epoch_4.npz").exists()
    for name, value in resumed.model.params.items():
        assert value.dtype == getattr(xp, dtype), name
        assert device(value) == device(full.model.params[name]), name


@pytest.mark.parametrize("source, target", [("numpy", "torch"), ("torch", "numpy"), ("numpy", "array_api_strict")])
def test_checkpoint_resumes_on_another_backend(source, target, tmp_path):
    xp_source, xp_target = load_backend(source), load_backend(target)
    np.random.seed(0)
    full = make_solver(StatefulNet(xp_source, keep=0.7), num_epochs=3)
    full.train()
    np.random.seed(0)
    stopped = make_solver(StatefulNet(xp_source, keep=0.7), num_epochs=1, checkpoint_name=str(tmp_path / "run"))
    stopped.train()
    resumed = make_solver(StatefulNet(xp_target, keep=0.7), num_epochs=3, resume_from=tmp_path / "run_epoch_1.npz")
    for name, config in resumed.optim_configs.items():
        assert namespace(config["m"]) is xp_target, name
    resumed.train()
    assert namespace(resumed.model.params["W1"]) is xp_target
    assert_same_run(snapshot(resumed), snapshot(full), rtol=1e-9, atol=1e-9)


def test_bn_params_are_checkpointed_without_get_state(tmp_path):
    np.random.seed(0)
    solver = make_solver(TinyNet(np), num_epochs=1)
    solver.train()
    solver.save_checkpoint(tmp_path / "c.npz")
    fresh = TinyNet(np)
    make_solver(fresh, resume_from=tmp_path / "c.npz")
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(fresh.bn_params[0][key], solver.model.bn_params[0][key])
    assert fresh.bn_params[0]["mode"] == "train"


class PoisonedNet(TinyNet):
    """Loss and gradients become NaN at training call ``at`` (1-based)."""

    def __init__(self, xp, at: int):
        super().__init__(xp)
        self.at, self.calls = at, 0

    def loss(self, X, y=None):
        if y is None:
            return super().loss(X)
        self.calls += 1
        loss, grads = super().loss(X, y)
        if self.calls >= self.at:
            loss, grads = loss * math.nan, {k: g * math.nan for k, g in grads.items()}
        return loss, grads


def test_non_finite_loss_raises_on_request_and_restores_best_params(xp):
    np.random.seed(0)
    solver = make_solver(PoisonedNet(xp, at=13), num_epochs=3, print_every=100, on_nonfinite="raise")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at iteration 13 / 30 \(epoch 2 / 3\)") as info:
        solver.train()
    assert isinstance(info.value, FloatingPointError)
    assert (info.value.iteration, info.value.epoch) == (13, 2) and math.isnan(info.value.loss)
    assert len(solver.loss_history) == 13 and math.isnan(solver.loss_history[-1]), "history ends at the bad loss"
    assert solver.best_params, "the checks after iteration 1 and epoch 1 kept best params"
    for name, value in solver.model.params.items():
        assert np.all(np.isfinite(to_np(value))), name
        np.testing.assert_array_equal(to_np(value), to_np(solver.best_params[name]), err_msg=name)


def test_non_finite_loss_before_any_check_restores_initial_params():
    np.random.seed(0)
    model = PoisonedNet(np, at=1)
    initial = {k: v.copy() for k, v in model.params.items()}
    solver = make_solver(model, on_nonfinite="raise")
    with pytest.raises(NonFiniteLossError, match=r"^loss is nan at iteration 1 / 20 \(epoch 1 / 2\)") as info:
        solver.train()
    assert (info.value.iteration, info.value.epoch) == (1, 1) and math.isnan(info.value.loss)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, initial[name], err_msg=name)


ITERATION_LINE = r"\(Iteration (\d+) / 10\) loss: \d+\.\d{6}"
EPOCH_LINE = r"\(Epoch (\d) / 1\) train acc: [01]\.\d{6}; val_acc: [01]\.\d{6}"


def assert_cs231n_lines(stdout: str) -> None:
    """``stdout`` is exactly CS231n's prints for 1 epoch of 10 iterations with print_every=5, and nothing else."""
    lines = stdout.splitlines()
    patterns = [ITERATION_LINE, EPOCH_LINE, ITERATION_LINE, EPOCH_LINE]
    assert len(lines) == len(patterns), stdout
    numbers = []
    for line, pattern in zip(lines, patterns, strict=True):
        match = re.fullmatch(pattern, line)
        assert match, f"{line!r} is not CS231n's format {pattern!r}"
        numbers.append(int(match.group(1)))
    assert numbers == [1, 0, 6, 1], stdout


class Terminal(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


def test_verbose_prints_cs231n_lines_and_no_bar_when_stderr_is_not_a_terminal(capfd):
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=True).train()
    out, err = capfd.readouterr()
    assert_cs231n_lines(out)
    assert err == "", "output to a file or a CI log gets no progress bar"
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, verbose=False).train()
    assert capfd.readouterr() == ("", "")


def test_progress_bar_is_on_in_a_terminal_and_the_lines_stay_whole(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stderr", Terminal())
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=True).train()
    bar = sys.stderr.getvalue()
    assert "10/10" in bar and "val_acc=" in bar
    assert_cs231n_lines(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stderr", Terminal())
    make_solver(TinyNet(np), num_epochs=1, verbose=False).train()
    assert sys.stderr.getvalue() == "", "verbose=False is silent, as in CS231n, unless progress=True"


def test_progress_true_draws_a_bar_to_stderr_and_false_none(monkeypatch, capsys):
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=False, progress=True).train()
    out, err = capsys.readouterr()
    assert out == "" and "10/10" in err and "val_acc=" in err
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=True, progress=True).train()
    out, err = capsys.readouterr()
    assert_cs231n_lines(out)
    assert "10/10" in err
    monkeypatch.setattr(sys, "stderr", Terminal())
    np.random.seed(0)
    make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=True, progress=False).train()
    assert sys.stderr.getvalue() == "", "progress=False: no bar even in a terminal"
    assert_cs231n_lines(capsys.readouterr().out)


@pytest.mark.parametrize("progress", ["auto", 1, 0.5, "yes"])
def test_progress_must_be_true_false_or_none(progress):
    expected = rf"progress must be True, False or None \(auto\), got {re.escape(repr(progress))}"
    with pytest.raises(TypeError, match=expected):
        make_solver(TinyNet(np), progress=progress)


# A Jupyter kernel without ipywidgets, as tqdm.auto detects one: ipykernel's shell module is loaded.
_WIDGETLESS_KERNEL = """
import sys, types
shell = types.ModuleType("ipykernel.zmqshell")
class ZMQInteractiveShell: pass
ipython = types.ModuleType("IPython")
ipython.get_ipython = lambda: ZMQInteractiveShell()
sys.modules.update({"ipykernel.zmqshell": shell, "IPython": ipython, "ipywidgets": None})
"""


def test_no_tqdm_warning_and_no_bar_in_a_notebook_without_ipywidgets(tmp_path):
    """Importing the Solver and training verbosely in a widget-less kernel: CS231n's lines, nothing else.

    Warnings are shown, not raised: tqdm.auto catches its own TqdmWarning when it is an error, so ``-W error``
    would hide the warning a notebook user sees.
    """
    script = (
        _WIDGETLESS_KERNEL
        + """
import numpy as np
import xpnet.solver
from test_solver import TinyNet, make_solver
np.random.seed(0)
make_solver(TinyNet(np), num_epochs=1, print_every=5, verbose=True).train()
"""
    )
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "no TqdmWarning, no bar fragments"
    assert_cs231n_lines(done.stdout)


def test_misspelled_keyword_names_the_closest_one():
    """As a misspelled optim_config key does: the Solver's own keywords get a "did you mean"."""
    model = TinyNet(np)
    with pytest.raises(
        ValueError,
        match=r"^Unrecognized arguments \['lr_decya'\] \(did you mean 'lr_decay'\?\); Solver accepts \['batch_size', ",
    ):
        Solver(model, DATA, lr_decya=0.9)
    with pytest.raises(
        ValueError,
        match=r"^Unrecognized arguments \['bogus', 'lr_decya', 'num_epoch'\] "
        r"\(did you mean 'lr_decay' for 'lr_decya', 'num_epochs' for 'num_epoch'\?\); Solver accepts",
    ):
        Solver(model, DATA, num_epoch=3, bogus=1, lr_decya=0.9)
    with pytest.raises(ValueError, match=r"^Unrecognized arguments \['bogus'\]; Solver accepts"):  # nothing close
        Solver(model, DATA, bogus=1)


def test_bad_arguments_raise_clear_errors(tmp_path):
    model = TinyNet(np)
    with pytest.raises(ValueError, match=r"Unrecognized arguments \['bogus', 'lr'\]"):
        Solver(model, DATA, bogus=1, lr=0.1)
    with pytest.raises(ValueError, match=r"Invalid update_rule 'adamw'; expected one of \['sgd', .*'adam'\]"):
        Solver(model, DATA, update_rule="adamw")
    with pytest.raises(ValueError, match=r"data is missing \['X_val', 'y_val'\]"):
        Solver(model, {"X_train": DATA["X_train"], "y_train": DATA["y_train"]})
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        Solver(model, DATA, batch_size=0)
    with pytest.raises(ValueError, match="y_train must hold integer class labels"):
        Solver(model, {**DATA, "y_train": DATA["y_train"] * 1.0})
    with pytest.raises(ValueError, match=r"y_val must have shape \(60,\)"):
        Solver(model, {**DATA, "y_val": DATA["y_val"][:5]})
    with pytest.raises(ValueError, match=r"y_train must hold class labels >= 0, got values from -1 to 2"):
        Solver(model, {**DATA, "y_train": np.where(DATA["y_train"] == 0, -1, DATA["y_train"])})
    model.num_classes = C  # with num_classes (as xpnet's models have) the upper bound is checked too
    with pytest.raises(ValueError, match=r"y_val must hold class labels in \[0, 3\), got values from 0 to 3"):
        Solver(model, {**DATA, "y_val": np.where(DATA["y_val"] == 2, 3, DATA["y_val"])})

    solver = make_solver(model, num_epochs=0)
    solver.save_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="10 iterations per epoch, this Solver has 5"):
        make_solver(TinyNet(np), batch_size=BATCH * 2, resume_from=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="written with update_rule 'adam', this Solver uses 'sgd'"):
        make_solver(TinyNet(np), update_rule="sgd", resume_from=tmp_path / "c.npz")
    two = make_solver(TinyNet(np), num_epochs=2)
    two.train()
    two.save_checkpoint(tmp_path / "two.npz")
    message = r"two.npz was written after epoch 2, beyond this Solver's num_epochs=1: num_epochs is the total"
    with pytest.raises(ValueError, match=message):
        make_solver(TinyNet(np), num_epochs=1, resume_from=tmp_path / "two.npz")
    make_solver(TinyNet(np), num_epochs=2, resume_from=tmp_path / "two.npz").train()  # nothing left: allowed
    small = TinyNet(np)
    small.params["W1"] = small.params["W1"][:, :3]
    with pytest.raises(ValueError, match=r"param 'W1' has shape \(6, 16\), the model's is \(6, 3\)"):
        make_solver(small, resume_from=tmp_path / "c.npz")


def test_rng_state_helpers_round_trip_through_json():
    rng = host_rng(3)
    saved = json.loads(json.dumps(rng_state(rng)))
    expected = host_integers(100, 5, rng)
    np.testing.assert_array_equal(host_integers(100, 5, rng_from_state(saved)), expected)
    np.random.seed(1)
    saved = json.loads(json.dumps(rng_state(None)))
    expected = host_integers(100, 5)
    assert rng_from_state(saved) is None
    np.testing.assert_array_equal(host_integers(100, 5), expected)
    np.random.seed(231)
    cs231n = np.random.choice(100, 5)
    np.random.seed(231)
    np.testing.assert_array_equal(host_integers(100, 5), cs231n)


def test_fully_connected_net_checkpoints_through_get_state(xp, tmp_path):
    """xpnet's own FullyConnectedNet (batchnorm + dropout) resumes exactly through its get_state/set_state."""
    from xpnet.classifiers.fc_net import FullyConnectedNet

    dtype = widest_float(xp)  # float32 on the no_float64 device

    def build():
        np.random.seed(0)
        return FullyConnectedNet(
            [8],
            input_dim=D,
            num_classes=C,
            normalization="batchnorm",
            dropout_keep_ratio=0.7,
            dtype=dtype,
            xp=xp,
            device=device_under_test(xp),
        )

    full = make_solver(build(), num_epochs=2)
    full.train()
    make_solver(build(), num_epochs=1, checkpoint_name=str(tmp_path / "fc")).train()
    resumed = make_solver(build(), num_epochs=2, resume_from=tmp_path / "fc_epoch_1.npz")
    resumed.train()
    assert sorted(resumed.model.get_state()) == ["bn1.running_mean", "bn1.running_var"]
    assert_same_run(snapshot(resumed), snapshot(full))
    assert resumed.check_accuracy(DATA["X_val"], DATA["y_val"]) == resumed.best_val_acc


def test_non_finite_loss_stops_with_one_warning_by_default(xp):
    np.random.seed(0)
    solver = make_solver(PoisonedNet(xp, at=13), num_epochs=3, print_every=100)
    with pytest.warns(NonFiniteLossWarning, match=r"loss is nan at iteration 13 / 30 \(epoch 2 / 3\)") as record:
        solver.train()  # returns normally
    assert issubclass(NonFiniteLossWarning, RuntimeWarning)
    assert len([w for w in record if w.category is NonFiniteLossWarning]) == 1
    assert len(solver.loss_history) == 13 and math.isnan(solver.loss_history[-1])
    assert all(math.isfinite(v) for v in solver.loss_history[:-1])
    assert solver.epoch == 1 and len(solver.val_acc_history) == 2, "training stopped at once"
    assert solver.best_params
    for name, value in solver.model.params.items():
        np.testing.assert_array_equal(to_np(value), to_np(solver.best_params[name]), err_msg=name)


def _fc_model(xp):
    from xpnet.classifiers.fc_net import FullyConnectedNet

    return FullyConnectedNet([16], input_dim=D, num_classes=C, weight_scale=1e-1, xp=xp, device=device_under_test(xp))


def _train_recording(solver) -> list:
    """Train; the NonFiniteLossWarnings it emitted (NumPy's overflow warnings on a diverging run are ignored)."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        solver.train()
    return [w for w in caught if w.category is NonFiniteLossWarning]


def test_learning_rate_sweep_goes_on_after_a_diverged_run(xp):
    """CS231n's notebooks sweep learning rates in a plain loop: a run that diverges must not end the loop, and its
    non-finite params (lr=1e39 overflows float32 at the first update) must never become its best params."""
    results = {}
    for lr in (1e39, 1e-1):
        np.random.seed(0)
        model = _fc_model(xp)
        initial = {k: to_np(v).copy() for k, v in model.params.items()}
        solver = make_solver(model, update_rule="sgd", optim_config={"learning_rate": lr}, print_every=5)
        results[lr] = (solver, _train_recording(solver), initial)
    solver, diverged, initial = results[1e39]
    assert len(diverged) == 1 and "iteration 2 " in str(diverged[0].message)
    assert solver.best_params == {} and solver.best_val_acc == 0, "NaN params scored 1/3 but must not be best"
    for name, value in solver.model.params.items():
        np.testing.assert_array_equal(to_np(value), initial[name], err_msg=name)
    solver, diverged, _ = results[1e-1]
    assert not diverged and solver.best_val_acc > 0.9


class NaNScoresNet(TinyNet):
    """Finite params and losses, but NaN scores in test mode: its accuracy checks mean nothing."""

    def loss(self, X, y=None):
        out = super().loss(X, y)
        return out * math.nan if y is None else out


def test_a_check_with_non_finite_scores_never_becomes_best(xp):
    np.random.seed(0)
    solver = make_solver(NaNScoresNet(xp), num_epochs=1)
    solver.train()
    assert max(solver.val_acc_history) > 0, "argmax of NaN scores is class 0: some labels match by chance"
    assert solver.best_params == {} and solver.best_val_acc == 0


class InfiniteVarianceNet(StatefulNet):
    """Finite params, losses and scores, but an infinite running variance (test-mode x / sqrt(inf) is 0)."""

    def loss(self, X, y=None):
        out = super().loss(X, y)
        if y is not None:
            bn = self.bn_params[0]
            bn["running_var"] = bn["running_var"] * math.inf
        return out


def test_a_model_state_that_is_not_finite_never_becomes_best(xp, tmp_path):
    """Its checkpoint would be refused on resume (best arrays must be finite); before, it became best."""
    np.random.seed(0)
    solver = make_solver(InfiniteVarianceNet(xp), num_epochs=1)
    solver.train()
    assert max(solver.val_acc_history) > 0, "constant scores predict one class: some labels match"
    assert solver.best_params == {} and solver.best_val_acc == 0
    solver.save_checkpoint(tmp_path / "c.npz")
    make_solver(InfiniteVarianceNet(xp), num_epochs=1, resume_from=tmp_path / "c.npz")


def test_on_nonfinite_must_be_stop_or_raise():
    with pytest.raises(ValueError, match=r"on_nonfinite must be 'stop' or 'raise', got 'ignore'"):
        Solver(TinyNet(np), DATA, on_nonfinite="ignore")


@pytest.mark.parametrize("name", ["X_train", "X_val"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_features_are_refused_at_construction(xp, name, bad):
    X = DATA[name].copy()
    X[7, 2] = bad
    model = TinyNet(xp)
    X = to_xp(X, xp, dtype=model.params["W1"].dtype)
    message = rf"{name} must hold finite values, got 1 NaN or infinite entries \(the first in row 7\)"
    with pytest.raises(ValueError, match=message):
        Solver(model, {**DATA, name: X}, verbose=False)
    solver = make_solver(model, num_epochs=0)
    with pytest.raises(ValueError, match=r"X must hold finite values"):
        solver.check_accuracy(X, DATA[name.replace("X", "y")])


@pytest.mark.parametrize(
    "seed, error, match",
    [
        (1.5, TypeError, r"seed must be an int >= 0, a numpy.random.Generator or None, got 1.5"),
        ("0", TypeError, r"seed must be an int >= 0.*, got '0'"),
        (True, TypeError, r"seed must be an int >= 0.*, got True"),
        ([1], TypeError, r"seed must be an int >= 0.*, got \[1\]"),
        (-1, ValueError, r"seed must be an int >= 0.*, got -1"),
    ],
)
def test_bad_seed_is_named(seed, error, match):
    with pytest.raises(error, match=match):
        Solver(TinyNet(np), DATA, seed=seed)


def test_numpy_integer_and_generator_seeds_are_accepted():
    np.random.seed(0)
    a = make_solver(TinyNet(np), seed=np.int64(3), num_epochs=1)
    a.train()
    np.random.seed(0)
    b = make_solver(TinyNet(np), seed=np.random.default_rng(3), num_epochs=1)
    b.train()
    assert a.loss_history == b.loss_history


class _ThirdPartyBitGenerator(np.random.PCG64):
    """A bit generator that is not NumPy's own, as a third-party package's would be: its state names another
    kind, which no resume can rebuild."""

    @property
    def state(self):
        return {**super().state, "bit_generator": "Xoshiro256"}


def test_a_generator_no_resume_could_restore_is_refused_with_checkpoints_and_trains_without(tmp_path):
    """Before, its state went into every checkpoint, and resuming from one was refused; now a checkpoint_name is
    refused at once, naming seed, before the folder is touched. Without checkpoints it trains as any Generator."""
    foreign = np.random.Generator(_ThirdPartyBitGenerator(3))
    target = tmp_path / "runs" / "net"
    with pytest.raises(
        ValueError,
        match=r"seed must be a numpy.random.Generator on one of NumPy's bit generators "
        r"\['MT19937', 'PCG64', 'PCG64DXSM', 'Philox', 'SFC64'\] .* got one on 'Xoshiro256'",
    ):
        make_solver(TinyNet(np), seed=foreign, num_epochs=1, checkpoint_name=str(target))
    assert not (tmp_path / "runs").exists()
    solver = make_solver(TinyNet(np), seed=foreign, num_epochs=1)
    with pytest.raises(ValueError, match="seed must be a numpy.random.Generator"):
        solver.checkpoint_name = str(target)
    assert solver.checkpoint_name is None
    solver.train()
    assert len(solver.loss_history) > 0
    for kind in ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"):  # NumPy's own are all resumable
        make_solver(TinyNet(np), seed=np.random.Generator(getattr(np.random, kind)(1)), checkpoint_name=str(target))


def test_the_resumable_bit_generators_are_those_a_checkpoint_load_checks():
    from xpnet import _metadata, _random

    assert set(_random.BIT_GENERATORS) == set(_metadata._BIT_GENERATOR_STATES)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr_decay": math.inf}, ValueError, r"lr_decay must be a finite number > 0, got inf"),
        ({"lr_decay": math.nan}, ValueError, r"lr_decay must be a finite number > 0, got nan"),
        ({"lr_decay": 0}, ValueError, r"lr_decay must be a finite number > 0, got 0"),
        ({"lr_decay": "0.9"}, TypeError, r"lr_decay must be a real number, got '0.9'"),
        ({"lr_decay": True}, TypeError, r"lr_decay must be a real number, got True"),
        ({"batch_size": True}, TypeError, r"batch_size must be an int >= 1, got True"),
        ({"num_epochs": 2.0}, TypeError, r"num_epochs must be an int >= 0, got 2.0"),
        ({"print_every": -1}, ValueError, r"print_every must be an int >= 1, got -1"),
        ({"num_train_samples": False}, TypeError, r"num_train_samples must be an int >= 1 or None, got False"),
        (
            {"optim_config": {"learnin_rate": 1e-2}},
            ValueError,
            r"optim_config has unknown key 'learnin_rate' \(did you mean 'learning_rate'\?\); adam accepts the keys "
            r"\['beta1', 'beta2', 'epsilon', 'learning_rate', 'm', 't', 'v'\]",
        ),
        (
            {"optim_config": {"learning_rate": "1e-2"}},
            TypeError,
            r"^optim_config\['learning_rate'\] must be a real number, got '1e-2'$",
        ),
        (
            {"update_rule": "sgd_momentum", "optim_config": {"momentum": 1.5}},
            ValueError,
            r"optim_config\['momentum'\] must be a finite number in \[0, 1\), got 1.5",
        ),
        (
            {"optim_config": {"learning_rate": math.inf}},
            ValueError,
            r"optim_config\['learning_rate'\] must be a finite",
        ),
    ],
)
def test_bad_settings_are_named_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_solver(TinyNet(np), **kwargs)


def test_numpy_integer_settings_and_custom_rule_config_keys_are_accepted():
    def rule(w, dw, config):
        return w - config["lr"] * dw, config  # a custom rule's config is its own business

    np.random.seed(0)
    solver = make_solver(
        TinyNet(np), update_rule=rule, optim_config={"lr": 1e-2}, batch_size=np.int64(BATCH), num_epochs=np.int32(1)
    )
    solver.train()
    assert len(solver.loss_history) == N_TRAIN // BATCH


def test_a_failing_step_updates_no_param(xp):
    """Every update is computed before any is stored: a rule failing on one param leaves all of them as they were."""

    def rule(w, dw, config):
        if w.shape == (H, C):  # W2
            raise FloatingPointError("simulated failure")
        return optim.sgd(w, dw, config)

    np.random.seed(0)
    model = TinyNet(xp)
    solver = make_solver(model, update_rule=rule, optim_config={"learning_rate": 1e-2})
    before = {k: to_np(v).copy() for k, v in model.params.items()}
    with pytest.raises(FloatingPointError, match=r"^simulated failure$") as info:
        solver.train()
    # The rule's own error, passed on as it was: not a NonFiniteLossError (a FloatingPointError too) from the loss.
    assert type(info.value) is FloatingPointError, repr(info.value)
    for name, value in model.params.items():
        np.testing.assert_array_equal(to_np(value), before[name], err_msg=name)
    assert solver.optim_configs["W1"] == {"learning_rate": 1e-2}, "no config was advanced either"
    assert solver._iteration == 0 and solver.loss_history == []

    class NoGradNet(TinyNet):
        def loss(self, X, y=None):
            if y is None:
                return super().loss(X)
            loss, grads = super().loss(X, y)
            del grads["W2"]
            return loss, grads

    model = NoGradNet(xp)
    before = {k: to_np(v).copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"model.loss returned no gradient for param 'W2'"):
        make_solver(model).train()
    for name, value in model.params.items():
        np.testing.assert_array_equal(to_np(value), before[name], err_msg=name)
