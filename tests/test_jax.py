"""What the ``xp`` fixture cannot show about JAX: its 64-bit mode turned off (the fixture turns it on), tracers under
``jax.jit``, accelerators, and a model built with ``xp="jax"`` trained, checkpointed and reloaded end to end."""

import os
import subprocess
import sys
import textwrap

import conftest
import numpy as np
import pytest

from xpnet import _backend as B
from xpnet.classifiers import FullyConnectedNet, ThreeLayerConvNet, load_model
from xpnet.solver import Solver

from helpers import WINDOW_BACKWARD_CASES, blobs, to_np, window_backward

jax = pytest.importorskip("jax", reason="jax is not installed (pip install xpnet[jax])")
jnp = pytest.importorskip("jax.numpy")


@pytest.fixture(params=["jax"], autouse=True)
def xp(request):
    """The jax backend as tests/conftest.py's ``xp`` fixture loads it (64-bit mode on). Named ``xp`` and parametrized
    by the backend id, as that fixture is, so that conftest labels these tests as jax tests for ci/check_backends.py.
    """
    if "jax" not in conftest.BACKENDS:
        pytest.skip(f"jax is not selected by XPNET_BACKENDS ({conftest.BACKENDS})")
    return conftest.load_backend("jax")


def test_float64_without_64bit_mode_is_refused_not_truncated():
    # JAX without its 64-bit mode stores float32 when float64 is asked for (asarray of float64 data silently, an
    # explicit dtype with only a warning): a float64 gradient check would then "pass" at float32 precision.
    message = r"dtype float64 needs JAX's 64-bit mode, which is off: .*jax.config.update\('jax_enable_x64', True\)"
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=message):
            B.asarray(np.zeros(3), xp="jax")
        with pytest.raises(ValueError, match=message):
            B.resolve_dtype(jnp, "float64")
        with pytest.raises(ValueError, match=message):
            FullyConnectedNet(hidden_dims=[4], input_dim=5, num_classes=3, xp="jax", dtype="float64")
        # float32 is honest without the mode: asked for explicitly, the widest float, and a float32 model's loss.
        assert B.asarray(np.zeros(3), xp="jax", dtype="float32").dtype == jnp.float32
        assert B.max_float_dtype(jnp) == jnp.float32
        # A float32 model and the Solver run without a warning (labels are int32 there: no int64 is asked for).
        data = blobs(n_train=20, n_val=10, dim=6, classes=3)
        model = FullyConnectedNet(hidden_dims=[4], input_dim=6, num_classes=3, xp="jax")
        loss, grads = model.loss(data["X_train"][:4], data["y_train"][:4])
        assert loss.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads.values())
        Solver(model, data, num_epochs=1, batch_size=10, verbose=False).train()


def test_the_jax_module_and_its_numpy_are_one_backend():
    assert B.load_namespace(jax) is jnp and B.load_namespace(jnp) is jnp and B.load_namespace("jax") is jnp
    assert B.backend_name(jnp) == "jax"


def test_tracers_are_not_host_resident():
    # Inside jax.jit no value can be read: code that reads one on the host only when that is free must not try.
    seen = []

    @jax.jit
    def step(a):
        seen.append(B.is_host_resident(a))
        return a * 2

    step(jnp.ones(2))
    assert seen == [False]
    assert B.is_host_resident(jnp.ones(2)) is True


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: FullyConnectedNet(hidden_dims=[7, 5], input_dim=6, num_classes=3, xp="jax", dtype="float64"), (6,)),
        (
            lambda: ThreeLayerConvNet(
                input_dim=(2, 6, 6), num_filters=3, filter_size=3, hidden_dim=5, num_classes=3, xp="jax"
            ),
            (2, 6, 6),
        ),
    ],
    ids=["fc", "cnn"],
)
def test_loss_under_jit_with_params_closed_over_equals_eager(make, shape):
    # X (and y) traced, params closed over: a tracer has no device, so the model's device check must not misfire;
    # the label range is read only from host arrays, so it is skipped for a tracer rather than read.
    np.random.seed(231)
    model = make()
    rng = np.random.default_rng(0)
    X = B.asarray(rng.standard_normal((4, *shape)), like=model.params["W1"])
    y = B.asarray(np.array([0, 2, 1, 2]), xp="jax")
    np.testing.assert_allclose(to_np(jax.jit(lambda X: model.loss(X))(X)), to_np(model.loss(X)), rtol=1e-6, atol=1e-12)
    loss, grads = jax.jit(lambda X, y: model.loss(X, y))(X, y)
    eager_loss, eager_grads = model.loss(X, y)
    np.testing.assert_allclose(to_np(loss), to_np(eager_loss), rtol=1e-6)
    assert grads.keys() == eager_grads.keys()
    for k in grads:
        np.testing.assert_allclose(to_np(grads[k]), to_np(eager_grads[k]), rtol=1e-5, atol=1e-9, err_msg=k)


def test_a_concrete_array_on_another_jax_device_is_still_refused():
    # Two host devices exist only if XLA is told so before JAX starts: a fresh interpreter, bounded.
    script = textwrap.dedent(
        """
        import jax, numpy as np, pytest
        from xpnet import _backend as B
        from xpnet.classifiers import FullyConnectedNet
        cpu0, cpu1 = jax.devices("cpu")[:2]
        model = FullyConnectedNet(hidden_dims=[4], input_dim=5, num_classes=3, xp="jax", dtype="float32",
                                  device=cpu0)
        X = jax.device_put(np.ones((2, 5), np.float32), cpu1)
        with pytest.raises(ValueError, match=r"^X is on device .*1.*, the model's params on .*0.*; move it"):
            model.loss(X)
        assert model.loss(jax.device_put(np.ones((2, 5), np.float32), cpu0)).shape == (2, 3)
        print("refused")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "refused", done.stderr[-3000:]


def _accelerator():
    """JAX's first GPU/TPU device, or None (CPU-only jaxlib, or no device visible)."""
    return next((d for d in jax.devices() if d.platform != "cpu"), None)


# Runs on a GPU machine: ci/gpu.sh runs this test with XPNET_BACKENDS=jax where JAX sees a GPU, and requires it to
# pass (a skip there fails the check).
@pytest.mark.skipif(_accelerator() is None, reason="no JAX accelerator (GPU/TPU) on this machine")
def test_accelerator_arrays_are_not_host_resident(monkeypatch):
    accelerator = _accelerator()
    on_accelerator = jax.device_put(jnp.ones(2), accelerator)
    assert on_accelerator.devices() == {accelerator}
    assert B.is_host_resident(on_accelerator) is False
    assert B.is_host_resident(jax.device_put(jnp.ones(2), jax.devices("cpu")[0])) is True
    # sync must wait for the accelerator's queued work, not return at once: block_until_ready is what waits.
    waited = []
    real = jax.block_until_ready
    monkeypatch.setattr(jax, "block_until_ready", lambda a: waited.append(a) or real(a))
    B.sync(on_accelerator)
    assert waited == [on_accelerator]


def test_jax_model_trains_checkpoints_reloads_and_matches_numpy(tmp_path):
    # xp="jax" end to end, with dropout and batchnorm: weights (np.random.seed) and dropout masks (seed) are drawn
    # on the host, so the JAX model computes NumPy's numbers; the checkpoint and model file round-trip JAX params.
    data = blobs(n_train=40, n_val=10, dim=6, classes=3)
    kwargs = dict(
        hidden_dims=[8],
        input_dim=6,
        num_classes=3,
        dtype="float64",
        normalization="batchnorm",
        dropout_keep_ratio=0.7,
        seed=3,
        weight_scale=0.1,
    )
    models = {}
    for name in ("numpy", "jax"):
        np.random.seed(231)
        models[name] = FullyConnectedNet(xp=name, **kwargs)
    X, y = data["X_train"][:5], data["y_train"][:5]
    (loss_np, grads_np), (loss_jax, grads_jax) = (models[n].loss(X, y) for n in ("numpy", "jax"))
    np.testing.assert_allclose(to_np(loss_jax), to_np(loss_np), rtol=1e-12)
    for k in grads_np:
        np.testing.assert_allclose(to_np(grads_jax[k]), to_np(grads_np[k]), rtol=1e-9, atol=1e-12, err_msg=k)

    # Trained unseeded: a seeded dropout layer reseeds NumPy's global state at every call, as CS231n's does, so a
    # Solver would draw the same minibatch at every step. Unseeded masks come from the global state, which the
    # checkpoint saves, so the resume below is still exact.
    kwargs["seed"] = None
    np.random.seed(231)
    model = FullyConnectedNet(xp="jax", **kwargs)
    solver = Solver(
        model,
        data,
        num_epochs=2,
        batch_size=10,
        update_rule="adam",
        verbose=False,
        optim_config={"learning_rate": 1e-2},
        checkpoint_name=str(tmp_path / "run"),
    )
    solver.train()
    assert all(B.backend_name(B.namespace(p)) == "jax" for p in model.params.values())
    assert solver.best_val_acc > 0.5
    resumed = Solver(
        FullyConnectedNet(xp="jax", **kwargs),
        data,
        num_epochs=2,
        batch_size=10,
        update_rule="adam",
        verbose=False,
        optim_config={"learning_rate": 1e-2},
        resume_from=tmp_path / "run_epoch_1.npz",
    )
    resumed.train()
    for k, v in model.params.items():
        np.testing.assert_array_equal(to_np(resumed.model.params[k]), to_np(v), err_msg=k)

    model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz", xp="jax")
    assert B.namespace(loaded.params["W1"]) is jnp
    for k, v in model.params.items():
        np.testing.assert_array_equal(to_np(loaded.params[k]), to_np(v), err_msg=k)
    np.testing.assert_array_equal(to_np(loaded.loss(data["X_val"])), to_np(model.loss(data["X_val"])))


def _jit_fc():
    return FullyConnectedNet(
        [5, 5],
        input_dim=6,
        num_classes=3,
        normalization="batchnorm",
        dropout_keep_ratio=0.5,
        reg=0.1,
        dtype="float64",
        xp="jax",
    )


def test_jitted_step_threads_state_and_gives_eager_numbers():
    """Batchnorm statistics and Adam's state go in and come out of a jitted step (the layers write tracers into
    the dicts the step returns, never into anything that outlives it); dropout masks drawn outside are inputs; the
    learning rate and Adam's t are traced arrays. Three steps give eager's params, statistics and loss."""
    from xpnet import optim

    model = _jit_fc()
    rs = np.random.RandomState(0)
    X, y = jnp.asarray(rs.randn(4, 6)), jnp.asarray([0, 1, 2, 1])
    names = [f"bn{i}.{k}" for i in (1, 2) for k in ("running_mean", "running_var")]

    def step(params, configs, state, masks):
        model.params = dict(params)
        model.set_state(state)
        loss, grads = model.loss(X, y, dropout_masks=masks)
        updates = {p: optim.adam(w, grads[p], dict(configs[p])) for p, w in params.items()}
        new_params = {p: u[0] for p, u in updates.items()}
        return loss, new_params, {p: u[1] for p, u in updates.items()}, model.get_state()

    jitted = jax.jit(step)
    params0 = dict(model.params)
    params, state = dict(params0), {n: jnp.zeros(5) for n in names}
    configs = {p: {"learning_rate": jnp.asarray(1e-2), "t": jnp.asarray(0)} for p in params}
    eparams, econfigs = dict(params0), {p: {"learning_rate": 1e-2} for p in params}
    np.random.seed(3)
    all_masks = [model.draw_dropout_masks(4) for _ in range(3)]
    for masks in all_masks:
        loss, params, configs, state = jitted(params, configs, state, masks)
    # The layer dicts hold the last trace's tracers now: the state lives in what the step returned, so the caller
    # writes it back (here: eager's starting state) before the model runs eagerly again.
    model.set_state({n: jnp.zeros(5) for n in names})
    for masks in all_masks:
        model.params = eparams
        eloss, grads = model.loss(X, y, dropout_masks=masks)
        for p in list(eparams):
            eparams[p], econfigs[p] = optim.adam(eparams[p], grads[p], econfigs[p])
    np.testing.assert_allclose(float(loss), float(eloss), rtol=1e-12)
    for p in params:
        # atol: b1 and b2 feed batchnorm, so their gradient is rounding noise (~1e-11) on either path.
        np.testing.assert_allclose(to_np(params[p]), to_np(eparams[p]), rtol=1e-10, atol=1e-9, err_msg=p)
    for n in names:
        np.testing.assert_allclose(to_np(state[n]), to_np(model.get_state()[n]), rtol=1e-10, atol=1e-9, err_msg=n)
    assert int(configs["W1"]["t"]) == econfigs["W1"]["t"] == 3


def test_dropout_under_jit_without_a_mask_raises():
    """A mask drawn while tracing would be one constant reused at every step: refused, not silently wrong."""
    model = _jit_fc()
    X, y = jnp.asarray(np.ones((4, 6))), jnp.asarray([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"dropout_param\['mask'\] is required in train mode under a compiler"):
        jax.jit(lambda X, y: model.loss(X, y))(X, y)
    # Test mode draws nothing, so it traces.
    assert jax.jit(lambda X: model.loss(X))(X).shape == (4, 3)


def test_solver_compile_on_jax_matches_eager():
    """Solver(compile=True) with jax.jit: 2 epochs with batchnorm, dropout, Adam and a decay give eager's losses."""
    histories = {}
    rs = np.random.RandomState(0)
    data = {
        "X_train": rs.randn(40, 6),
        "y_train": rs.randint(0, 3, 40),
        "X_val": rs.randn(10, 6),
        "y_val": rs.randint(0, 3, 10),
    }
    for compiled in (False, True):
        np.random.seed(1)
        solver = Solver(
            _jit_fc(),
            data,
            update_rule="adam",
            optim_config={"learning_rate": 1e-2},
            lr_decay=0.9,
            batch_size=10,
            num_epochs=2,
            verbose=False,
            seed=0,
            compile=compiled,
        )
        solver.train()
        histories[compiled] = np.array(solver.loss_history)
    np.testing.assert_allclose(histories[True], histories[False], rtol=1e-5, atol=1e-8)
    assert len(histories[True]) == 8


@pytest.mark.parametrize(("layer", "kernel", "stride"), WINDOW_BACKWARD_CASES)
def test_backward_passes_under_jit_equal_eager(layer, kernel, stride):
    """Under jax.jit the convolution's dx and the overlapping pool's dx are sums of padded windows (a compiler's
    formulation; eagerly they are accumulated in place): the same numbers."""
    rng = np.random.default_rng(0)
    x, w, b = (B.asarray(rng.standard_normal(s), xp="jax") for s in ((2, 3, 9, 9), (4, 3, kernel, kernel), (4,)))
    backward = window_backward(layer, kernel, stride)
    for got, expected in zip(jax.jit(backward)(x, w, b), backward(x, w, b), strict=True):
        np.testing.assert_allclose(to_np(got), to_np(expected), rtol=1e-12, atol=1e-12)
