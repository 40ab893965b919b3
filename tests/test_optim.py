"""Update rules: CS231n's notebook values, several steps against torch.optim in float64, and the state contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import optim
from xpnet._backend import backend_name, namespace

from helpers import (
    FLOAT_DTYPES,
    assert_close,
    assert_close_to_reference,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)

N, D = 4, 5
W = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
DW = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)


def assert_notebook_values(actual, expected):
    """The notebook's arrays are printed to 8 decimals: exact values lie within half a unit of the last digit."""
    np.testing.assert_allclose(to_np(actual), expected, rtol=0, atol=5.01e-9)


def test_sgd_momentum_matches_cs231n_notebook(xp):
    v = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-3, "velocity": to_xp(v, xp)}
    next_w, _ = optim.sgd_momentum(to_xp(W, xp), to_xp(DW, xp), config=config)
    expected_next_w = np.asarray(
        [
            [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
            [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
            [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
            [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096],
        ]
    )
    expected_velocity = np.asarray(
        [
            [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
            [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
            [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
            [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096],
        ]
    )
    assert namespace(next_w) is xp and namespace(config["velocity"]) is xp
    assert_notebook_values(next_w, expected_next_w)
    assert_notebook_values(config["velocity"], expected_velocity)


def test_rmsprop_matches_cs231n_notebook(xp):
    cache = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-2, "cache": to_xp(cache, xp)}
    next_w, _ = optim.rmsprop(to_xp(W, xp), to_xp(DW, xp), config=config)
    expected_next_w = np.asarray(
        [
            [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
            [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
            [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
            [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619],
        ]
    )
    expected_cache = np.asarray(
        [
            [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
            [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
            [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
            [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926],
        ]
    )
    assert namespace(next_w) is xp and namespace(config["cache"]) is xp
    assert_notebook_values(next_w, expected_next_w)
    assert_notebook_values(config["cache"], expected_cache)


def test_adam_matches_cs231n_notebook(xp):
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    config = {"learning_rate": 1e-2, "m": to_xp(m, xp), "v": to_xp(v, xp), "t": 5}
    next_w, _ = optim.adam(to_xp(W, xp), to_xp(DW, xp), config=config)
    expected_next_w = np.asarray(
        [
            [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
            [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
            [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
            [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459],
        ]
    )
    expected_v = np.asarray(
        [
            [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
            [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
            [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
            [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966],
        ]
    )
    expected_m = np.asarray(
        [
            [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
            [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
            [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
            [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85],
        ]
    )
    assert config["t"] == 6
    assert_notebook_values(next_w, expected_next_w)
    assert_notebook_values(config["v"], expected_v)
    assert_notebook_values(config["m"], expected_m)


# rule name -> (xpnet config, the torch optimizer doing the same thing)
TORCH_EQUIVALENTS = {
    "sgd": ({"learning_rate": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": ({"learning_rate": 0.1, "momentum": 0.8}, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8)),
    "rmsprop": (
        {"learning_rate": 0.01, "decay_rate": 0.9, "epsilon": 1e-6},
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6),
    ),
    "adam": (
        {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    ),
}


@requires_torch
@FLOAT_DTYPES
@pytest.mark.parametrize("rule", sorted(TORCH_EQUIVALENTS))
def test_rule_matches_torch_optim_over_several_steps(xp, rule, dtype):
    """Five steps on a quadratic whose gradient changes with w, compared with torch.optim in float64 from the same
    (dtype-rounded) start: every state array stays on the backend in dtype."""
    config, make_torch = TORCH_EQUIVALENTS[rule]
    config = dict(config)
    rng = np.random.default_rng(0)
    w0, target = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)

    ref = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = make_torch([ref])
    w, t = to_xp(w0, xp), to_xp(target, xp)
    for _ in range(5):
        opt.zero_grad()
        (0.5 * (ref - torch.tensor(target, dtype=torch.float64)).pow(3).abs().sum()).backward()
        opt.step()
        d = w - t
        dw = 1.5 * d * xp.abs(d)  # gradient of 0.5 * |d|**3
        w, config = getattr(optim, rule)(w, dw, config)
    if dtype == "float64":
        assert_close(w, ref.detach().numpy(), xp=xp, rtol=1e-12, atol=1e-14, err_msg=rule)
    else:  # elementwise, but each of the 5 steps rounds w, and the next gradient, again
        assert_close_to_reference(w, ref.detach().numpy(), dtype=dtype, xp=xp, terms=5, err_msg=rule)
    for key, value in config.items():
        if not isinstance(value, (int, float)):
            assert namespace(value) is xp, f"{rule} state must stay on {backend_name(xp)}"
            assert value.dtype == w.dtype, f"{rule} config[{key!r}] must stay {dtype}"


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_defaults_and_state_created_on_the_parameter_backend(xp, rule):
    w = to_xp(np.ones((2, 3)), xp, dtype="float32")
    dw = to_xp(np.full((2, 3), 0.5), xp, dtype="float32")
    next_w, config = getattr(optim, rule)(w, dw)  # config=None -> a fresh dict
    defaults = {"sgd": 1e-2, "sgd_momentum": 1e-2, "rmsprop": 1e-2, "adam": 1e-3}
    assert config["learning_rate"] == defaults[rule]
    assert next_w.dtype == xp.float32 and namespace(next_w) is xp
    assert np.all(to_np(w) == 1.0), "the rule must not modify w in place"
    state = {"sgd": [], "sgd_momentum": ["velocity"], "rmsprop": ["cache"], "adam": ["m", "v"]}[rule]
    for key in state:
        assert namespace(config[key]) is xp and config[key].dtype == xp.float32 and config[key].shape == (2, 3)
    # Every rule's first step from zero state moves each weight against the gradient.
    assert np.all(to_np(next_w) < 1.0)


def test_cs231n_default_hyperparameters():
    w, dw = np.ones(2), np.ones(2)
    assert optim.sgd_momentum(w, dw)[1]["momentum"] == 0.9
    config = optim.rmsprop(w, dw)[1]
    assert (config["decay_rate"], config["epsilon"]) == (0.99, 1e-8)
    config = optim.adam(w, dw)[1]
    assert (config["beta1"], config["beta2"], config["epsilon"], config["t"]) == (0.9, 0.999, 1e-8, 1)


@requires_torch
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"dw must have the shape of w \(2, 3\), got \(3, 2\)"):
        optim.sgd(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="config must be a dict"):
        optim.adam(np.ones(2), np.ones(2), config=[("learning_rate", 1.0)])
    with pytest.raises(ValueError, match=r"config\['velocity'\] must have the shape of w"):
        optim.sgd_momentum(np.ones(2), np.ones(2), config={"velocity": np.zeros(3)})
    with pytest.raises(TypeError, match="different backends"):
        optim.sgd(np.ones(2), torch.ones(2, dtype=torch.float64))


RULES = ["sgd", "sgd_momentum", "rmsprop", "adam"]
ACCEPTED = {
    "sgd": ["learning_rate"],
    "sgd_momentum": ["learning_rate", "momentum", "velocity"],
    "rmsprop": ["cache", "decay_rate", "epsilon", "learning_rate"],
    "adam": ["beta1", "beta2", "epsilon", "learning_rate", "m", "t", "v"],
}
# hyperparameter -> values outside its range (NaN and both infinities are refused everywhere)
OUT_OF_RANGE = {
    "learning_rate": [-1e-3],
    "momentum": [-0.1, 1.0, 1.5],
    "decay_rate": [-0.1, 1.0],
    "beta1": [-0.1, 1.0],
    "beta2": [1.0, 2.0],
    "epsilon": [0.0, -1e-8],
}
HYPER = {rule: [k for k in ACCEPTED[rule] if k in OUT_OF_RANGE] for rule in RULES}


def test_config_spec_is_the_table_the_rules_follow():
    # The public table says what each rule accepts and fills in; the rules agree with it (and with CS231n above).
    assert list(optim.CONFIG_SPEC) == RULES
    w = np.ones(2)
    for rule, spec in optim.CONFIG_SPEC.items():
        assert sorted(spec.keys) == ACCEPTED[rule]
        assert sorted(spec.hyperparameters) == HYPER[rule]
        config = getattr(optim, rule)(w, w)[1]
        assert {k: config[k] for k in spec.hyperparameters} == spec.defaults()
        assert config.keys() <= spec.keys
    beta1 = optim.CONFIG_SPEC["adam"].hyperparameters["beta1"]
    assert (beta1.low, beta1.high, beta1.include_low) == (0.0, 1.0, True)
    with pytest.raises(TypeError):
        optim.CONFIG_SPEC["sgd"] = optim.CONFIG_SPEC["adam"]  # read-only on purpose


def test_check_config_checks_a_config_without_arrays():
    optim.check_config("adam", {"learning_rate": 0.0, "beta1": np.float32(0.5), "t": 3})
    with pytest.raises(ValueError, match=r"^optim_config\['beta2'\] must be a finite number in \[0, 1\), got 1.0$"):
        optim.check_config("adam", {"beta2": 1.0}, "optim_config")
    with pytest.raises(ValueError, match=r"^config has unknown key 'lr'; sgd accepts the keys \['learning_rate'\]$"):
        optim.check_config("sgd", {"lr": 0.1})
    with pytest.raises(
        ValueError, match=r"^rule must be one of \['sgd', 'sgd_momentum', 'rmsprop', 'adam'\], got 'ada'$"
    ):
        optim.check_config("ada", {})


def _w(xp, shape=(2, 3), dtype="float64"):
    return to_xp(np.ones(shape), xp, dtype=dtype)


@pytest.mark.parametrize("rule", RULES)
def test_unknown_config_key_is_named_with_the_accepted_keys(xp, rule):
    w = _w(xp, dtype=widest_float(xp))
    config = {"learnin_rate": 1e-2}
    unknown = r"config has unknown key 'learnin_rate' \(did you mean 'learning_rate'\?\)"
    with pytest.raises(ValueError, match=unknown) as info:
        getattr(optim, rule)(w, w, config)
    assert str(ACCEPTED[rule]) in str(info.value)
    assert config == {"learnin_rate": 1e-2}, "a refused config must not be filled in"


@given(
    case=st.sampled_from([(rule, key) for rule in RULES for key in HYPER[rule]]).flatmap(
        lambda rk: st.tuples(
            st.just(rk),
            st.sampled_from([math.nan, math.inf, -math.inf, *OUT_OF_RANGE[rk[1]]])
            | st.sampled_from(["0.01", None, True, [0.1], np.ones(1)]),
        )
    )
)
@settings(max_examples=50, deadline=None)
def test_bad_hyperparameters_are_named(case):
    (rule, key), value = case
    w = np.ones(3)
    expected = ValueError if isinstance(value, float) else TypeError
    with pytest.raises(expected, match=rf"config\['{key}'\] must be a (real|finite) number"):
        getattr(optim, rule)(w, w, {key: value})


@pytest.mark.parametrize("rule", RULES)
def test_hyperparameters_at_the_edges_of_their_ranges_are_accepted(rule):
    edges = {
        "learning_rate": 0,
        "momentum": 0.0,
        "decay_rate": 0.0,
        "beta1": 0.0,
        "beta2": np.float32(0.5),
        "epsilon": 1e-300,
    }
    config = {k: edges[k] for k in HYPER[rule]}
    next_w, _ = getattr(optim, rule)(np.ones(3), np.ones(3), config)
    assert np.all(np.isfinite(next_w))


@pytest.mark.parametrize("t, error", [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("3", TypeError)])
def test_adam_step_count_must_be_a_non_negative_int(t, error):
    with pytest.raises(error, match=r"config\['t'\] \(adam's step count\) must be an int >= 0"):
        optim.adam(np.ones(2), np.ones(2), {"t": t})
    optim.adam(np.ones(2), np.ones(2), {"t": np.int64(3)})


STATE_KEY = {"sgd_momentum": "velocity", "rmsprop": "cache", "adam": "m"}


@requires_torch
@pytest.mark.parametrize("rule", sorted(STATE_KEY))
def test_state_on_another_backend_names_both_backends_and_the_key(xp, rule):
    key = STATE_KEY[rule]
    w = _w(xp)
    other = torch.zeros((2, 3), dtype=torch.float64) if backend_name(xp) != "torch" else np.zeros((2, 3))
    with pytest.raises(TypeError, match=rf"different backends \(w is .*, config\['{key}'\] is (torch|numpy)\."):
        getattr(optim, rule)(w, w, {key: other})
    with pytest.raises(TypeError, match=rf"config\['{key}'\] must be an array"):
        getattr(optim, rule)(w, w, {key: [[0.0] * 3] * 2})


@pytest.mark.parametrize("rule", sorted(STATE_KEY))
def test_state_shape_and_dtype_must_match_w(xp, rule):
    key = STATE_KEY[rule]
    w = _w(xp, dtype="float32")
    with pytest.raises(ValueError, match=rf"config\['{key}'\] must have the shape of w \(2, 3\), got \(3, 2\)"):
        getattr(optim, rule)(w, w, {key: _w(xp, (3, 2), dtype="float32")})
    config = {key: _w(xp, dtype="float64")}
    with pytest.raises(TypeError, match=rf"config\['{key}'\] must have the dtype of w \(.*float32.*\), got .*float64"):
        getattr(optim, rule)(w, w, config)
    with pytest.raises(TypeError, match=r"dw must have the dtype of w \(.*float32.*\), got .*float64"):
        getattr(optim, rule)(w, _w(xp, dtype="float64"))


def test_state_on_another_device_is_named():
    import array_api_strict as xps

    w = xps.ones((2, 3), dtype=xps.float64)
    other = xps.zeros((2, 3), dtype=xps.float64, device=xps.Device("device1"))
    with pytest.raises(ValueError, match=r"config\['velocity'\] is on device .*device1.*, w on .*CPU_DEVICE"):
        optim.sgd_momentum(w, w, {"velocity": other})
