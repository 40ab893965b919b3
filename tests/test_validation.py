"""xpnet._validation: one argument order (value, name, *, bounds) and one message shape (the argument, the expected,
the got) for every scalar, flag and settings dict xpnet checks. Backend-free."""

import math
import re

import numpy as np
import pytest

from xpnet._validation import check_flag, check_int, check_keys, check_progress, check_real, did_you_mean


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [(3, {}, 3), (np.int64(3), {"low": 3}, 3), (np.uint8(0), {"low": 0, "high": 0}, 0), (-5, {"high": -5}, -5)],
)
def test_check_int_returns_a_python_int(value, kwargs, expected):
    out = check_int(value, "n", **kwargs)
    assert out == expected and type(out) is int


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (True, {"low": 1}, TypeError, "n must be an int >= 1, got True"),
        (np.True_, {}, TypeError, "n must be an int, got np.True_"),
        (2.0, {"low": 1}, TypeError, "n must be an int >= 1, got 2.0"),
        ("3", {"low": 0, "high": 9}, TypeError, "n must be an int in [0, 9], got '3'"),
        (np.array(3), {}, TypeError, "n must be an int, got array(3)"),
        (0, {"low": 1}, ValueError, "n must be an int >= 1, got 0"),
        (10, {"low": 0, "high": 9}, ValueError, "n must be an int in [0, 9], got 10"),
        (np.int64(7), {"high": 5}, ValueError, "n must be an int <= 5, got 7"),
    ],
)
def test_check_int_refuses_by_name(value, kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check_int(value, "n", **kwargs)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0, {"low": 0.0}, 0.0),
        (np.float32(0.5), {"low": 0.0, "high": 1.0, "include_low": False}, 0.5),
        (1, {"low": 0.0, "high": 1.0}, 1.0),
        (math.inf, {"low": 0.0, "finite": False}, math.inf),
        (-1e300, {}, -1e300),
    ],
)
def test_check_real_returns_a_python_float(value, kwargs, expected):
    out = check_real(value, "x", **kwargs)
    assert out == expected and type(out) is float


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (True, {}, TypeError, "x must be a real number, got True"),
        ("0.5", {"low": 0.0}, TypeError, "x must be a real number, got '0.5'"),
        (1j, {}, TypeError, "x must be a real number, got 1j"),
        (None, {}, TypeError, "x must be a real number, got None"),
        (0, {"low": 0.0, "high": 1.0, "include_low": False}, ValueError, "x must be a finite number in (0, 1], got 0"),
        (1.0, {"low": 0, "high": 1, "include_high": False}, ValueError, "x must be a finite number in [0, 1), got 1.0"),
        (-1e-5, {"low": 0.0}, ValueError, "x must be a finite number >= 0, got -1e-05"),
        (0.0, {"low": 0.0, "include_low": False}, ValueError, "x must be a finite number > 0, got 0.0"),
        (2, {"high": 1.0}, ValueError, "x must be a finite number <= 1, got 2"),
        (math.nan, {}, ValueError, "x must be a finite number, got nan"),
        (math.nan, {"finite": False}, ValueError, "x must be a number, got nan"),  # NaN is never in an interval
        (math.inf, {"low": 0.0}, ValueError, "x must be a finite number >= 0, got inf"),
        (np.float64(math.inf), {"high": 0.0, "finite": False, "include_high": False}, ValueError,
         "x must be a number < 0, got inf"),
    ],
)  # fmt: skip
def test_check_real_refuses_by_name(value, kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check_real(value, "x", **kwargs)


def test_allow_none_lets_none_through_and_says_so():
    assert check_int(None, "n", low=1, allow_none=True) is None
    assert check_real(None, "t", low=0.0, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^n must be an int >= 1 or None, got 0$"):
        check_int(0, "n", low=1, allow_none=True)
    with pytest.raises(TypeError, match=r"^n must be an int >= 1 or None, got False$"):
        check_int(False, "n", low=1, allow_none=True)
    with pytest.raises(ValueError, match=r"^t must be a finite number > 0 or None, got inf$"):
        check_real(math.inf, "t", low=0.0, include_low=False, allow_none=True)
    with pytest.raises(TypeError, match=r"^t must be a real number or None, got '5'$"):
        check_real("5", "t", allow_none=True)
    with pytest.raises(TypeError, match=r"^n must be an int, got None$"):
        check_int(None, "n")


def test_flags_and_progress_accept_only_bools_and_none():
    assert check_flag(False, "f") is False
    assert check_progress(None) is None and check_progress(True) is True
    assert check_flag(None, "f", allow_none=True) is None
    for value in (0, 1, None, "yes", np.True_):
        with pytest.raises(TypeError, match=f"^f must be True or False, got {re.escape(repr(value))}$"):
            check_flag(value, "f")
    for value in (0, "yes", np.False_):
        with pytest.raises(
            TypeError, match=rf"^bar must be True, False or None \(auto\), got {re.escape(repr(value))}"
        ):
            check_progress(value, "bar")


def test_check_keys_names_the_dict_the_key_and_the_accepted_ones():
    check_keys({"a": 1}, "p", required=("a",), allowed=("b",))  # the required keys are allowed too
    check_keys({"anything": 1}, "p")  # no allowed set: any key passes
    with pytest.raises(TypeError, match=r"^p must be a dict, got list$"):
        check_keys([("a", 1)], "p")
    with pytest.raises(ValueError, match=r"^p has unknown key 'strid' \(did you mean 'stride'\?\); accepted keys: "):
        check_keys({"strid": 1, "pad": 0}, "p", allowed=("stride", "pad"))
    # Several unknown keys: the first by str order is named; keys that are not strings get no hint.
    with pytest.raises(ValueError, match=r"^p has unknown key 1; adam accepts the keys \['beta1', 'm'\]$"):
        check_keys({"zzz": 0, 1: 0}, "p", allowed=("m", "beta1"), owner="adam")
    with pytest.raises(ValueError, match=r"^p is missing key\(s\) \['a', 'c'\]; required keys: \['a', 'b', 'c'\]$"):
        check_keys({"b": 1}, "p", required=("c", "a", "b"))
    with pytest.raises(ValueError, match=r"^p is missing key\(s\) \['a'\]; a Net needs \['a'\]$"):
        check_keys({}, "p", required=("a",), owner="a Net")


def test_did_you_mean_points_each_misspelling_at_its_closest_key():
    assert did_you_mean(["learnin_rate"], ["learning_rate", "momentum"]) == " (did you mean 'learning_rate'?)"
    assert did_you_mean(["xyz"], ["learning_rate"]) == ""
    two = did_you_mean(["momentun", "beta"], ["momentum", "beta1"])
    assert two == " (did you mean 'momentum' for 'momentun', 'beta1' for 'beta'?)"
