"""The one door for files: damaged, tampered and hand-edited checkpoints and model files are refused by name before
anything changes; writes are atomic, durable, made with the user's umask, and clean up after a crash."""

from __future__ import annotations

import contextvars
import io
import json
import math
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet.classifiers import FullyConnectedNet, load_model
from xpnet.solver import Solver, checkpoint_epoch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from helpers import blobs, device_under_test, on_numpy_only, require_dtype, to_np, to_xp

D, C, N_TRAIN, N_VAL, BATCH = 5, 3, 40, 20, 10
META = "__xpnet_meta__.npy"
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Reading a file (zip members, .npy headers, metadata, random states) and checking it against the model happen on the
# host before any array reaches the backend, so the fuzzing and the hand edits below run on NumPy alone
# (helpers.on_numpy_only): once per backend they repeated the same host work (issue 18). Damaged files, metadata
# that is not JSON, non-finite and mis-shaped arrays and the round trip still run on every backend and its device.
HOST_ONLY = on_numpy_only()


DATA = blobs(n_train=N_TRAIN, n_val=N_VAL, dim=D, classes=C)


def _model(xp, **kwargs) -> FullyConnectedNet:
    np.random.seed(0)
    kwargs = {"normalization": "batchnorm", "weight_scale": 0.5, "dtype": "float64", **kwargs}
    require_dtype(xp, kwargs["dtype"])
    return FullyConnectedNet([8], input_dim=D, num_classes=C, xp=xp, device=device_under_test(xp), **kwargs)


def _solver(model, **kwargs) -> Solver:
    settings = {"update_rule": "adam", "optim_config": {"learning_rate": 1e-2}, "batch_size": BATCH}
    settings.update(num_epochs=2, verbose=False, seed=0)
    return Solver(model, DATA, **{**settings, **kwargs})


@pytest.fixture
def checkpoint(xp, tmp_path):
    """A checkpoint after one epoch of a batchnorm net with adam: params, best params, m, v, t, running stats."""
    solver = _solver(_model(xp), num_epochs=1)
    solver.train()
    path = tmp_path / "c.npz"
    solver.save_checkpoint(path)
    return path


@pytest.fixture
def model_file(xp, tmp_path):
    """A saved batchnorm net whose running statistics exist."""
    model = _model(xp)
    model.loss(to_xp(DATA["X_train"][:10], xp), to_xp(DATA["y_train"][:10], xp))
    path = tmp_path / "m.npz"
    model.save(path)
    return path


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_members(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(array, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=allow_pickle)
    return buf.getvalue()


def _npy_header(shape, dtype) -> bytes:
    """A ``.npy`` header alone: the data it announces is not there."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _meta(members: dict[str, bytes]) -> dict:
    return json.loads(str(np.load(io.BytesIO(members[META]))))


def _edit_meta(path, edit, dest=None) -> None:
    members = _members(path)
    meta = _meta(members)
    edit(meta)
    members[META] = _npy(np.asarray(json.dumps(meta)))
    _write_members(dest or path, members)


def _host(model) -> dict:
    return {
        **{f"param {k}": to_np(v) for k, v in model.params.items()},
        **{f"state {k}": to_np(v) for k, v in model.get_state().items()},
    }


def _resume_fails(xp, path, match, error=ValueError) -> BaseException:
    """Resuming from ``path`` raises ``error`` naming the file, and leaves the model and NumPy's random state alone."""
    model = _model(xp)
    before, rng_before = _host(model), np.random.get_state(legacy=False)
    with pytest.raises(error, match=match) as info:
        _solver(model, resume_from=path)
    message = str(info.value)
    assert os.fspath(path) in message, message
    assert "allow_pickle" not in message, "never advise unpickling"
    after = _host(model)
    assert sorted(after) == sorted(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    rng_after = np.random.get_state(legacy=False)
    np.testing.assert_array_equal(rng_after["state"]["key"], rng_before["state"]["key"])
    assert rng_after["state"]["pos"] == rng_before["state"]["pos"]
    return info.value


def _load_fails(xp, path, match, error=ValueError) -> BaseException:
    with pytest.raises(error, match=match) as info:
        load_model(path, xp=xp, device=device_under_test(xp))
    message = str(info.value)
    assert os.fspath(path) in message, message
    assert "allow_pickle" not in message, "never advise unpickling"
    return info.value


# Damaged files


def test_missing_files_are_named(xp, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        _solver(_model(xp), resume_from=tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_model(tmp_path / "nope.npz", xp=xp, device=device_under_test(xp))


def _bounded(call, unblock, what: str, timeout: float = 20.0):
    """``call()`` in a thread, its exception re-raised here: a call that blocks (as ``open()`` on a FIFO did) fails
    the test after ``timeout`` seconds instead of hanging it, and ``unblock()`` then releases the thread."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as err:  # re-raised in the test's thread
            outcome["error"] = err

    # The thread runs in a copy of this context: helpers.DEVICE (the device under test) is a ContextVar.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        unblock()
        thread.join(timeout)
        pytest.fail(f"{what} blocked for more than {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _release_fifo_reader(path) -> None:
    """Open the FIFO's writing end once (without waiting): a reader blocked in open() then reads end-of-file."""
    for _ in range(100):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError:  # ENXIO: no reader has it open (yet)
            time.sleep(0.05)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(xp, tmp_path):
    """open() on a FIFO waits for a writer: resuming from, loading or reading one blocked forever."""
    require_dtype(xp, "float64")  # of the models built in the thread
    fifo = tmp_path / "c.npz"
    os.mkfifo(fifo)
    message = "expected a regular file \\(an xpnet .npz file\\), got a FIFO"
    readers = {
        "resume_from": lambda: _resume_fails(xp, fifo, message),
        "load_model": lambda: _load_fails(xp, fifo, message),
        "checkpoint_epoch": lambda: pytest.raises(ValueError, checkpoint_epoch, fifo).match(message),
        "read_npz": lambda: pytest.raises(ValueError, xpnet._npz.read_npz, fifo).match(message),
    }
    for name, read in readers.items():
        _bounded(read, unblock=lambda: _release_fifo_reader(fifo), what=name)


@pytest.mark.parametrize("kind", ["a folder", "a character device"])
def test_a_folder_or_device_in_place_of_a_file_is_refused_by_name(tmp_path, kind):
    """A folder gave IsADirectoryError, /dev/null "the file is empty", /dev/zero read without end."""
    if kind == "a folder":
        path = tmp_path / "c.npz"
        path.mkdir()
    else:
        path = "/dev/null"
        if not os.path.exists(path):
            pytest.skip("no /dev/null on this platform")
    message = f"expected a regular file \\(an xpnet .npz file\\), got {kind}"
    _resume_fails(np, path, message)
    _load_fails(np, path, message)
    with pytest.raises(ValueError, match=message):
        checkpoint_epoch(path)


DAMAGE = {
    "empty": (lambda data: b"", "not a zip archive"),
    "not-a-zip": (lambda data: b"these are not the bytes you are looking for\n" * 20, "not a zip archive"),
    "first-half": (lambda data: data[: len(data) // 2], "truncated"),
    "tail-cut": (lambda data: data[:-10], "truncated"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_files_are_refused_by_name(xp, checkpoint, model_file, damage):
    cut, match = DAMAGE[damage]
    for path in (checkpoint, model_file):
        path.write_bytes(cut(path.read_bytes()))
    _resume_fails(xp, checkpoint, match)
    _load_fails(xp, model_file, match)


def test_zip_without_xpnet_metadata_is_not_an_xpnet_file(xp, checkpoint, model_file):
    for path in (checkpoint, model_file):
        members = _members(path)
        del members[META]
        _write_members(path, members)
    _resume_fails(xp, checkpoint, "not an xpnet Solver checkpoint")
    _load_fails(xp, model_file, "not an xpnet model file")


def test_a_header_claiming_more_data_than_stored_is_refused_before_allocating(xp, checkpoint, model_file):
    for path, member in ((checkpoint, "params/W1.npy"), (model_file, "params.W1.npy")):
        members = _members(path)
        members[member] = _npy_header((2**40,), "float64") + bytes(64)  # 8 TiB announced, 64 bytes stored
        _write_members(path, members)
    _resume_fails(xp, checkpoint, r"array 'params/W1'.* header claims .*more data than the member holds")
    _load_fails(xp, model_file, r"array 'params.W1'.* header claims .*more data than the member holds")


def test_object_arrays_are_refused_without_unpickling(xp, checkpoint, model_file):
    for path, member in ((checkpoint, "optim/W1/m.npy"), (model_file, "state.bn1.running_mean.npy")):
        members = _members(path)
        members[member] = _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        _write_members(path, members)
    _resume_fails(xp, checkpoint, r"array 'optim/W1/m'.*object \(pickle\) arrays are refused")
    _load_fails(xp, model_file, r"array 'state.bn1.running_mean'.*object \(pickle\) arrays are refused")


def test_missing_arrays_are_named(xp, checkpoint, model_file):
    members = _members(checkpoint)
    del members["optim/W1/m.npy"]
    _write_members(checkpoint, members)
    _resume_fails(xp, checkpoint, "missing array 'optim/W1/m'")
    members = _members(model_file)
    del members["params.b2.npy"]
    _write_members(model_file, members)
    _load_fails(xp, model_file, "b2")


def _set(keys, value):
    def edit(meta):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def _delete(keys):
    def edit(meta):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


CHECKPOINT_META_EDITS = {
    "no tree": (_delete(["tree"]), "metadata has no key 'tree'"),
    "no epoch": (_delete(["epoch"]), "metadata has no key 'epoch'"),
    "epoch is a string": (_set(["epoch"], "1"), r"'epoch' must be an int >= 0, got '1'"),
    "negative iteration": (_set(["iteration"], -3), r"'iteration' must be an int >= 0, got -3"),
    "history of strings": (_set(["loss_history"], [1.0, "x"]), "'loss_history' must be a list of numbers"),
    "best_val_acc is null": (_set(["best_val_acc"], None), "'best_val_acc' must be a number"),
    "version is a string": (_set(["version"], "1"), "'version' must be an int"),
    "newer version": (_set(["version"], 99), "checkpoint version 99; this xpnet reads up to 1"),
    "wrong format": (_set(["format"], "xpnet.model"), "not an xpnet Solver checkpoint"),
    "params not a dict": (_set(["tree", "params"], [1, 2]), "'tree/params' must be a dict"),
    "no optim configs": (_delete(["tree", "optim_configs"]), "metadata has no key 'tree/optim_configs'"),
    "unknown best param": (_set(["tree", "best_params", "W9"], {"__array__": "params/W1"}), r"best_params.*W9"),
    "missing optim config": (_delete(["tree", "optim_configs", "W2"]), r"optim_configs.*'W2'"),
    "t is a string": (_set(["tree", "optim_configs", "W1", "t"], "10"), r"optim_configs\['W1'\]\['t'\]"),
    "learning rate is a string": (
        _set(["tree", "optim_configs", "b1", "learning_rate"], "0.01"),
        r"optim_configs\['b1'\]\['learning_rate'\]",
    ),
    "param is a number": (_set(["tree", "params", "W1"], 3.0), r"param 'W1' must be an array"),
    "unknown state kind": (_set(["model_state_kind"], "pickle"), "'model_state_kind' must be"),
    "unknown state name": (
        _set(["tree", "model_state", "bn7.running_mean"], {"__array__": "params/b1"}),
        "bn7.running_mean",
    ),
    "damaged global random state": (
        _set(["numpy_global_rng", "state", "bit_generator"], "Nope"),
        "'numpy_global_rng'",
    ),
    "sampler claims the global state": (_set(["sampler", "global"], True), "'sampler'"),
    "sampler state is a list": (_set(["sampler"], [1, 2]), "'sampler'"),
    "sampler names no bit generator": (_set(["sampler", "state", "bit_generator"], "system"), "no NumPy bit generator"),
    "global random key is a number": (
        _set(["numpy_global_rng", "state", "state", "key"], 0),
        "'numpy_global_rng' is not a NumPy random state as xpnet saves it",
    ),
    "accuracy above one": (_set(["best_val_acc"], 2.0), r"'best_val_acc' must be a number in \[0, 1\]"),
    "negative learning rate": (
        _set(["tree", "optim_configs", "W1", "learning_rate"], -1.0),
        r"optim_configs\['W1'\]\['learning_rate'\] must be a finite number >= 0, got -1.0",
    ),
    "misspelled optim key": (
        _set(["tree", "optim_configs", "W1", "learnin_rate"], 0.1),
        r"optim_configs\['W1'\] has unknown key 'learnin_rate'",
    ),
    "adam state is a number": (
        _set(["tree", "optim_configs", "W1", "m"], 3),
        r"optim_configs\['W1'\]\['m'\] must be an array or null",
    ),
    "config replaced by an array": (
        _set(["tree", "optim_configs", "W2"], {"__array__": "params/W2"}),
        r"optim_configs\['W2'\] must be a dict",
    ),
    "model state dropped": (_set(["tree", "model_state"], None), "'tree/model_state' is null"),
    "best state without best params": (_set(["tree", "best_model_state"], None), "saved together"),
}


@pytest.mark.parametrize("edit", sorted(CHECKPOINT_META_EDITS))
@HOST_ONLY
def test_hand_edited_checkpoint_metadata_is_refused_by_key(xp, checkpoint, edit):
    change, match = CHECKPOINT_META_EDITS[edit]
    _edit_meta(checkpoint, change)
    _resume_fails(xp, checkpoint, match)


def test_metadata_that_is_not_a_json_object_is_refused(xp, checkpoint):
    members = _members(checkpoint)
    for text, match in (("{not json", "metadata is not valid JSON"), ("[1, 2]", "metadata must be a JSON object")):
        members[META] = _npy(np.asarray(text))
        _write_members(checkpoint, members)
        _resume_fails(xp, checkpoint, match)
    members[META] = _npy(np.arange(3.0))
    _write_members(checkpoint, members)
    _resume_fails(xp, checkpoint, "metadata")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["params/W1", "optim/W1/m", "get_state", "bn_params", "MT19937", "PCG64"])
    | st.builds(lambda k: {"__array__": k}, st.sampled_from(["params/W1", "params/b2", "nope"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    """Every path into a JSON tree."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _draw_edit(data, meta: dict):
    """An edit of ``meta`` drawn by hypothesis: any JSON value put at any place, or a key removed."""
    where = data.draw(st.sampled_from([p for p in _paths(meta) if p]), label="where")
    if data.draw(st.booleans(), label="delete") and isinstance(where[-1], str):
        return _delete(list(where))
    return _set(list(where), data.draw(JSON, label="value"))


@HOST_ONLY
@FUZZ
@given(data=st.data())
def test_any_metadata_edit_resumes_or_is_a_value_error_naming_the_file(xp, checkpoint, tmp_path, data):
    """Any JSON value at any place in a checkpoint's metadata (or a key removed): the Solver resumes, or raises a
    ValueError naming the file with the model and NumPy's random state untouched; never another exception."""
    members = _members(checkpoint)
    meta = _meta(members)
    edit = _draw_edit(data, meta)
    path = tmp_path / "edited.npz"
    _edit_meta(checkpoint, edit, dest=path)
    try:
        _solver(_model(xp), resume_from=path)
    except ValueError:
        _resume_fails(xp, path, ".")


@HOST_ONLY
@FUZZ
@given(data=st.data())
def test_any_model_metadata_edit_loads_or_is_a_value_error_naming_the_file(xp, model_file, tmp_path, data):
    meta = _meta(_members(model_file))
    edit = _draw_edit(data, meta)
    path = tmp_path / "edited.npz"
    _edit_meta(model_file, edit, dest=path)
    try:
        load_model(path, xp=xp, device=device_under_test(xp))
    except ValueError as err:
        assert os.fspath(path) in str(err)


# Tampered random states: NumPy range-checks none of these fields, and an MT19937 pos past its 624 words makes the
# next draws read memory outside the state (large draws crashed the process with SIGSEGV).

_MT19937_SAMPLER = json.loads(json.dumps(xpnet._random.rng_state(np.random.Generator(np.random.MT19937(0)))))
_OUT_OF_RANGE = st.integers(-(2**70), 2**70)


def _u32_key(data, length: int, bad_value: bool) -> dict:
    values = data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=length, max_size=length), label="key")
    if bad_value and values:
        i = data.draw(st.integers(0, len(values) - 1), label="index")
        values[i] = data.draw(st.integers(2**32, 2**70) | st.integers(-(2**70), -1), label="bad word")
    return {"__ndarray__": values, "dtype": "uint32"}


def _bad_rng_edit(data):
    """A tampered random state NumPy would never produce, and the field a message must name."""
    case = data.draw(
        st.sampled_from(["pos", "key length", "key word", "key dtype", "has_gauss", "gauss", "sampler"]),
        label="case",
    )
    rng = ["numpy_global_rng", "state"]
    if case == "pos":
        pos = data.draw(_OUT_OF_RANGE.filter(lambda v: not 0 <= v <= 624), label="pos")
        return _set([*rng, "state", "pos"], pos), "'state/state/pos'"
    if case == "key length":
        length = data.draw(st.integers(0, 700).filter(lambda n: n != 624), label="length")
        return _set([*rng, "state", "key"], _u32_key(data, length, bad_value=False)), "'state/state/key'"
    if case == "key word":
        return _set([*rng, "state", "key"], _u32_key(data, 624, bad_value=True)), "'state/state/key'"
    if case == "key dtype":
        key = _u32_key(data, 624, bad_value=False)
        key["dtype"] = data.draw(st.sampled_from(["uint64", "int64", "float64", "object"]), label="dtype")
        return _set([*rng, "state", "key"], key), "'state/state/key'"
    if case == "has_gauss":
        flag = data.draw(_OUT_OF_RANGE.filter(lambda v: v not in (0, 1)), label="has_gauss")
        return _set([*rng, "has_gauss"], flag), "'state/has_gauss'"
    if case == "gauss":
        value = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]), label="gauss")
        return _set([*rng, "gauss"], value), "'state/gauss'"
    # An MT19937 sampler (a Generator passed as seed=) with its pos out of range: it crashed train().
    sampler = json.loads(json.dumps(_MT19937_SAMPLER))
    sampler["state"]["state"]["pos"] = data.draw(_OUT_OF_RANGE.filter(lambda v: not 0 <= v <= 624), label="pos")
    return _set(["sampler"], sampler), "'sampler'.*'state/state/pos'"


@FUZZ
@given(data=st.data())
def test_random_states_numpy_would_not_produce_are_refused_by_field(tmp_path_factory, data):
    """Host-only (NumPy random states are the same on every backend): a tampered MT19937 pos, key, has_gauss or
    gauss of the global state, or a sampler's pos, is a ValueError naming the file and the field, before anything
    changes. Before the fix pos=630 resumed and the next draws read past the state."""
    folder = tmp_path_factory.mktemp("rng")
    source = folder / "c.npz"
    _solver(_model(np), num_epochs=0).save_checkpoint(source)
    edit, field = _bad_rng_edit(data)
    path = folder / "tampered.npz"
    _edit_meta(source, edit, dest=path)
    _resume_fails(np, path, field)


@pytest.mark.parametrize("pos", [630, 10**6])
def test_an_mt19937_pos_past_its_table_is_refused_on_every_backend(xp, checkpoint, pos):
    _edit_meta(checkpoint, _set(["numpy_global_rng", "state", "state", "pos"], pos))
    _resume_fails(xp, checkpoint, rf"'numpy_global_rng'.*'state/state/pos' must be an int in \[0, 624\], got {pos}")


_GENERATOR_FIELDS = {
    "PCG64": [(["state", "state"], 2**128), (["state", "inc"], 2), (["has_uint32"], 2), (["uinteger"], 2**32)],
    "PCG64DXSM": [(["state", "inc"], -1), (["has_uint32"], -1)],
    "Philox": [(["buffer_pos"], -1), (["buffer_pos"], 5), (["state", "key"], {"__ndarray__": [1], "dtype": "uint64"})],
    "SFC64": [(["state", "state"], {"__ndarray__": [0, 0, 0, -1], "dtype": "uint64"}), (["uinteger"], -1)],
    "MT19937": [(["state", "pos"], 625), (["has_gauss"], 0)],  # a Generator's MT19937 has no spare gauss
}


@pytest.mark.parametrize("name", sorted(_GENERATOR_FIELDS))
def test_every_bit_generator_kind_is_accepted_as_numpy_writes_it_and_refused_out_of_range(tmp_path, name):
    source = tmp_path / "c.npz"
    seed = np.random.Generator(getattr(np.random, name)(5))
    _solver(_model(np), num_epochs=0, seed=seed).save_checkpoint(source)
    expected = _solver(_model(np), resume_from=source)._rng.random(3)  # the saved state resumes as it was
    np.testing.assert_array_equal(expected, np.random.Generator(getattr(np.random, name)(5)).random(3))
    for keys, value in _GENERATOR_FIELDS[name]:
        path = tmp_path / "tampered.npz"
        _edit_meta(source, _set(["sampler", "state", *keys], value), dest=path)
        _resume_fails(np, path, f"'sampler'.*'state/{'/'.join(keys)}'")
    for other in ("RandomState", "BitGenerator", "SeedSequence", "Nope"):
        _edit_meta(source, _set(["sampler", "state", "bit_generator"], other), dest=path)
        _resume_fails(np, path, "'sampler' names no NumPy bit generator xpnet accepts")
    _edit_meta(source, _set(["numpy_global_rng", "state", "bit_generator"], "PCG64"), dest=path)
    _resume_fails(np, path, "'numpy_global_rng' names no NumPy bit generator xpnet accepts")


def _tampered(a: np.ndarray):
    """Arrays that must not replace ``a``: another shape, or another dtype kind (float32 for float64 is fine)."""
    candidates = [np.zeros((3, 3)), a[..., None], a.astype(np.int64), a.astype(bool), a.astype(np.complex128)]
    if a.size > 1:
        candidates += [a.reshape(-1)[:-1], a.reshape(-1)[:, None]]
    if a.ndim == 2 and a.shape[0] != a.shape[1]:
        candidates.append(a.T)
    if a.ndim == 0:
        candidates.append(np.ones(2))
    different = [b for b in candidates if b.shape != a.shape or b.dtype.kind != a.dtype.kind]
    return st.sampled_from(different)


def _write_tampered(data, source, tmp_path):
    """A copy of file ``source`` with one array (drawn by hypothesis) replaced by a tampered one; returns the
    copy's path and the array's name."""
    members = _members(source)
    name = data.draw(st.sampled_from(sorted(n for n in members if n != META)), label="member")
    bad = data.draw(_tampered(np.load(io.BytesIO(members[name]))), label="tampered")
    path = tmp_path / "tampered.npz"
    _write_members(path, {**members, name: _npy(bad)})
    return path, name.removesuffix(".npy")


@HOST_ONLY
@FUZZ
@given(data=st.data())
def test_tampered_checkpoint_arrays_are_refused_before_anything_changes(xp, checkpoint, tmp_path, data):
    """Every array (params, best params, adam's m and v, running statistics, best running statistics) is checked
    for shape and dtype kind against what it replaces; a checkpoint whose best_params/W1 is (3, 3) or whose
    params are int64 was accepted before."""
    path, name = _write_tampered(data, checkpoint, tmp_path)
    _resume_fails(xp, path, re.escape(repr(name)))


@HOST_ONLY
@FUZZ
@given(data=st.data())
def test_tampered_model_file_arrays_are_refused(xp, model_file, tmp_path, data):
    path, name = _write_tampered(data, model_file, tmp_path)
    _load_fails(xp, path, re.escape(repr(name)))


def _poison(path, tree_key: str, value: float, dest) -> str:
    """Copy ``path`` to ``dest`` with one array of ``meta['tree'][tree_key]`` set to ``value`` at one element;
    returns the array's key."""
    members = _members(path)
    node = _meta(members)["tree"][tree_key]
    name = sorted(node)[-1]
    key = node[name]["__array__"]
    a = np.load(io.BytesIO(members[f"{key}.npy"])).copy()
    a.reshape(-1)[a.size // 2] = value
    _write_members(dest, {**members, f"{key}.npy": _npy(a)})
    return key


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("tree_key", ["best_params", "best_model_state"])
def test_non_finite_best_arrays_are_refused_before_anything_changes(xp, checkpoint, tmp_path, tree_key, value):
    """The Solver never keeps non-finite params or running statistics as the best ones; a checkpoint holding them
    was accepted and train() put them into the model."""
    path = tmp_path / "poisoned.npz"
    key = _poison(checkpoint, tree_key, value, path)
    _resume_fails(xp, path, rf"non-finite values \(NaN or inf\) in array {re.escape(repr(key))}")


def test_non_finite_current_params_still_resume(xp, checkpoint, tmp_path):
    """A run can save params that turned non-finite in the last updates before a loss showed it (training then
    stops and puts the best params back), so only the best arrays must be finite."""
    path = tmp_path / "diverged.npz"
    _poison(checkpoint, "params", math.nan, path)
    assert _solver(_model(xp), resume_from=path).best_params


def test_best_params_of_another_shape_and_int_params_are_refused(xp, checkpoint, tmp_path):
    members = _members(checkpoint)
    _write_members(tmp_path / "a.npz", {**members, "best_params/W1.npy": _npy(np.zeros((3, 3)))})
    _resume_fails(xp, tmp_path / "a.npz", r"best_params\['W1'\] has shape \(3, 3\), the model's is \(5, 8\)")
    as_int = np.load(io.BytesIO(members["params/W1.npy"])).astype(np.int64)
    _write_members(tmp_path / "b.npz", {**members, "params/W1.npy": _npy(as_int)})
    _resume_fails(xp, tmp_path / "b.npz", r"param 'W1' has dtype int64 \(integer\), the model's is float64")


@HOST_ONLY
@FUZZ
@given(cut=st.integers(min_value=0, max_value=2**31))
def test_a_file_cut_anywhere_gives_a_value_error_naming_it(xp, checkpoint, model_file, tmp_path, cut):
    for source, load in ((checkpoint, lambda p: _solver(_model(xp), resume_from=p)), (model_file, load_model)):
        data = source.read_bytes()
        path = tmp_path / "cut.npz"
        path.write_bytes(data[: cut % len(data)])
        with pytest.raises(ValueError) as info:
            load(path)
        assert os.fspath(path) in str(info.value)


@HOST_ONLY
@FUZZ
@given(where=st.integers(min_value=0, max_value=2**31), mask=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_is_refused_or_harmless(xp, model_file, tmp_path, where, mask):
    """A changed byte either changes nothing that is read (a timestamp, an unused field) or is a ValueError naming
    the file: the CRC-32 of each member and the checks of sizes, headers and metadata catch the rest."""
    data = bytearray(model_file.read_bytes())
    data[where % len(data)] ^= mask
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    try:
        loaded = load_model(path, xp=xp, device=device_under_test(xp))
    except ValueError as err:
        assert os.fspath(path) in str(err)
        return
    original = load_model(model_file, xp=xp, device=device_under_test(xp))
    assert loaded.config() == original.config()
    expected, got = _host(original), _host(loaded)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@HOST_ONLY
@FUZZ
@given(where=st.integers(min_value=0, max_value=2**31), mask=st.integers(min_value=1, max_value=255))
def test_a_flipped_checkpoint_byte_is_refused_or_harmless(xp, checkpoint, tmp_path, where, mask):
    data = bytearray(checkpoint.read_bytes())
    data[where % len(data)] ^= mask
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    model = _model(xp)
    try:
        _solver(model, resume_from=path)
    except ValueError as err:
        assert os.fspath(path) in str(err)
        return
    clean = _model(xp)
    _solver(clean, resume_from=checkpoint)
    expected, got = _host(clean), _host(model)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


class CS231nStyleNet:
    """As CS231n's own FullyConnectedNet: ``params`` and ``bn_params`` dicts, running statistics created at the
    first training pass, no get_state/set_state (the Solver checkpoints ``bn_params``)."""

    def __init__(self, xp):
        self.net = _model(xp)

    params = property(lambda self: self.net.params)
    bn_params = property(lambda self: self.net.bn_params)

    def loss(self, X, y=None):
        return self.net.loss(X, y)


def test_cs231n_style_running_statistics_are_checked_against_gamma(xp, tmp_path):
    solver = _solver(CS231nStyleNet(xp), num_epochs=1)
    solver.train()
    path = tmp_path / "c.npz"
    solver.save_checkpoint(path)
    fresh = CS231nStyleNet(xp)
    assert "running_mean" not in fresh.bn_params[0], "CS231n's models create them at the first pass"
    _solver(fresh, resume_from=path)
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(to_np(fresh.bn_params[0][key]), to_np(solver.model.bn_params[0][key]))
    members = _members(path)
    _write_members(path, {**members, "model_state/0/running_mean.npy": _npy(np.zeros(3))})
    model = CS231nStyleNet(xp)
    with pytest.raises(
        ValueError,
        match=r"model state bn_params\[0\]\['running_mean'\] has shape \(3,\), the "
        r"model's is \(8,\) \(array 'model_state/0/running_mean'\)",
    ):
        _solver(model, resume_from=path)
    assert "running_mean" not in model.bn_params[0]


# Model configuration


MODEL_META_EDITS = {
    "unknown config key": (
        _set(["config", "hiden_dims"], [8]),
        r"config has unknown key 'hiden_dims' \(did you mean 'hidden_dims'\?\); a FullyConnectedNet accepts the keys "
        r"\[.*'hidden_dims'",
    ),
    "missing config key": (
        _delete(["config", "input_dim"]),
        r"config is missing key\(s\) \['input_dim'\]; a FullyConnectedNet needs \[.*'input_dim'",
    ),
    "invalid config value": (_set(["config", "hidden_dims"], [0]), r"hidden_dims\[0\] must be an int >= 1, got 0$"),
    "config not a dict": (_set(["config"], [8]), "'config' must be a dict"),
    "class not a string": (_set(["class"], 5), "'class' must be a str"),
    "no config": (_delete(["config"]), "metadata has no key 'config'"),
    "unknown class": (_set(["class"], "ResNet"), "unknown class 'ResNet'"),
}


@pytest.mark.parametrize("edit", sorted(MODEL_META_EDITS))
@HOST_ONLY
def test_hand_edited_model_metadata_is_refused_by_key(xp, model_file, edit):
    change, match = MODEL_META_EDITS[edit]
    _edit_meta(model_file, change)
    _load_fails(xp, model_file, match)


def test_a_bad_backend_argument_is_not_blamed_on_the_file(model_file):
    with pytest.raises(ValueError, match="xp must be one of") as info:
        load_model(model_file, xp="mxnet")
    assert os.fspath(model_file) not in str(info.value)


# Writing


def test_object_arrays_are_never_written(tmp_path):
    from xpnet._npz import write_npz

    with pytest.raises(TypeError, match="array 'a' has dtype object"):
        write_npz(tmp_path / "x.npz", {"a": np.array([None, 1], dtype=object)})
    assert os.listdir(tmp_path) == []


def test_stale_temporary_files_of_the_target_are_removed_by_its_next_save(xp, tmp_path):
    mine = [".m.npz.tmp-0123456789abcdef", ".m.npz.tmp-fedcba9876543210"]
    others = [".n.npz.tmp-0123456789abcdef", ".m.npz.tmp-x.npz.tmp-0123456789abcdef", "m.npz.tmp-0123456789abcdef"]
    for name in mine + others:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    _model(xp).save(tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", *others])


@pytest.mark.skipif(fcntl is None, reason="flock is POSIX (Windows deletes no open file)")
def test_a_temporary_whose_writer_holds_its_lock_survives_another_save(tmp_path):
    """Each save removed every temporary of its target, a live writer's too: that writer's rename then failed."""
    live = tmp_path / ".m.npz.tmp-0123456789abcdef"
    fd = os.open(live, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a save in another process holds until its rename
        _model(np).save(tmp_path / "m.npz")
        assert live.exists(), "a live writer's temporary was removed"
    finally:
        os.close(fd)  # the writer is gone: the kernel drops its lock, the next save removes what it left
    _model(np).save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_temporary_removed_before_its_writer_locks_it_is_replaced(tmp_path, monkeypatch):
    """Another save's clean-up may take a new temporary's lock and remove it before its writer locks it: the
    writer then starts again with a new file instead of writing into a removed one."""
    lock, removed = xpnet._atomic.lock, []

    def racing_lock(fd, *, wait):
        if wait and not removed:
            (name,) = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
            os.unlink(tmp_path / name)
            removed.append(name)
        return lock(fd, wait=wait)

    monkeypatch.setattr(xpnet._atomic, "lock", racing_lock)
    _model(np).save(tmp_path / "m.npz")
    assert removed and os.listdir(tmp_path) == ["m.npz"]
    load_model(tmp_path / "m.npz")


_CONCURRENT_SAVER = """
import os, sys, time
import numpy as np
from xpnet.classifiers import FullyConnectedNet

target, go, who = sys.argv[1], sys.argv[2], int(sys.argv[3])
np.random.seed(0)
model = FullyConnectedNet([256], input_dim=512, num_classes=10, dtype="float64")
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
failed = []
for i in range(20):
    model.params["b2"][:] = 100 * who + i
    try:
        model.save(target)
    except OSError as err:
        failed.append(f"save {i}: {type(err).__name__}: {err}")
print(len(failed), *failed, sep="\\n", flush=True)
"""


def test_three_processes_saving_one_path_all_succeed(tmp_path):
    """Three processes each save one model 20 times to one path at once: every save succeeds (4 to 11 per process
    failed with FileNotFoundError, each save's clean-up removing the others' live temporaries), the file is one
    of them, complete, and no temporary is left."""
    target, go = tmp_path / "m.npz", tmp_path / "go"
    root = os.path.dirname(os.path.dirname(os.path.abspath(xpnet.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", _CONCURRENT_SAVER, str(target), str(go)]
    children = [subprocess.Popen([*command, str(who)], stdout=subprocess.PIPE, text=True, env=env) for who in range(3)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        go.touch()  # all three start saving together
        reports = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    for who, (child, report) in enumerate(zip(children, reports, strict=True)):
        assert child.returncode == 0 and report.split("\n")[0] == "0", f"process {who}: {report}"
    np.random.seed(0)
    expected = FullyConnectedNet([256], input_dim=512, num_classes=10, dtype="float64").params
    loaded = load_model(target).params
    b2 = to_np(loaded["b2"])
    assert np.all(b2 == b2[0]) and int(b2[0]) // 100 in range(3) and int(b2[0]) % 100 in range(20), b2
    for name in ("W1", "b1", "W2"):
        np.testing.assert_array_equal(to_np(loaded[name]), expected[name], err_msg=name)
    assert sorted(os.listdir(tmp_path)) == ["go", "m.npz"]


def test_temporary_file_is_named_after_its_target_and_removed_on_failure(tmp_path, monkeypatch):
    seen = []

    def failing_replace(src, dst):
        seen.append(os.path.basename(src))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        _model(np).save(tmp_path / "m.npz")
    assert len(seen) == 1 and re.fullmatch(r"\.m\.npz\.tmp-[0-9a-f]{16}", seen[0]), seen
    assert os.listdir(tmp_path) == []


def test_the_rename_is_made_durable_by_syncing_the_folder(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def spy_replace(src, dst):
        events.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    _model(np).save(tmp_path / "m.npz")
    assert events == ["fsync file", "rename", "fsync folder"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_are_created_with_the_users_umask(tmp_path, umask):
    model = _model(np)
    solver = _solver(model, num_epochs=0)
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.npz")
        solver.save_checkpoint(tmp_path / "c.npz")
    finally:
        os.umask(old)
    for name in ("m.npz", "c.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


_SAVER = """
import sys
import numpy as np
from xpnet.classifiers import FullyConnectedNet

np.random.seed(0)
model = FullyConnectedNet([1024, 1024], input_dim=1024, num_classes=10, dtype="float64")
for i in range(1_000_000):
    model.params["b3"][:] = i
    model.save(sys.argv[1])
    print(i, flush=True)
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_kill_9_mid_save_leaves_a_complete_file_and_the_next_save_cleans_up(tmp_path):
    """A real process saving a 17 MB model in a loop is killed with SIGKILL while a temporary file exists: the
    target still loads (the last complete save), and the next save of that target removes the leftover."""
    target = tmp_path / "m.npz"
    # The child imports this checkout's xpnet whether or not it is installed.
    root = os.path.dirname(os.path.dirname(os.path.abspath(xpnet.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    leftovers: list[str] = []
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout.readline().strip(), "the child saved nothing"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".m.npz.tmp-")]
                if leftovers:
                    break
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        loaded = load_model(target)  # the old file or the new one, never a broken one
        b3 = to_np(loaded.params["b3"])
        assert b3.shape == (10,) and np.all(b3 == b3[0]) and b3[0] == int(b3[0]) >= 0
        leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".m.npz.tmp-")]
        if leftovers:
            break
    assert leftovers, "the kill never landed during a write"
    loaded.save(target)
    assert os.listdir(tmp_path) == ["m.npz"]


# Solver's checkpoint folder


def test_checkpoint_folder_is_created_and_checked_when_the_solver_is_built(tmp_path):
    prefix = tmp_path / "runs" / "exp1" / "run"
    _solver(_model(np), checkpoint_name=str(prefix))
    assert os.listdir(tmp_path / "runs" / "exp1") == [], "the folder exists and the write probe is gone"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=r"checkpoint_name .*not-a-folder/sub/run") as info:
        _solver(_model(np), checkpoint_name=str(blocker / "sub" / "run"))
    assert "cannot write" in str(info.value)
    with pytest.raises(TypeError, match="checkpoint_name must be a str or os.PathLike, got int"):
        _solver(_model(np), checkpoint_name=5)


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_checkpoint_folder_is_refused_when_the_solver_is_built(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="checkpoint_name"):
            _solver(_model(np), checkpoint_name=str(folder / "run"))
    finally:
        folder.chmod(0o755)


# What worked keeps working


def test_round_trip_is_exact_and_float32_models_take_float64_files(xp, checkpoint, model_file):
    model = _model(xp)
    solver = _solver(model, resume_from=checkpoint)
    assert solver.epoch == 1 and solver.optim_configs["W1"]["t"] == N_TRAIN // BATCH
    with zipfile.ZipFile(checkpoint) as zf:
        for name in ("params/W1", "best_params/b2", "optim/W1/v", "model_state/bn1.running_var"):
            stored = np.load(io.BytesIO(zf.read(name + ".npy")))
            np.testing.assert_array_equal(stored, np.load(checkpoint)[name], err_msg=name)
    np.testing.assert_array_equal(to_np(model.params["W1"]), np.load(checkpoint)["params/W1"])
    loaded = load_model(model_file, xp=xp, device=device_under_test(xp))
    _edit_meta(model_file, _set(["config", "dtype"], "float32"))
    small = load_model(model_file, xp=xp, device=device_under_test(xp))
    np.testing.assert_array_equal(to_np(small.params["W1"]), to_np(loaded.params["W1"]).astype(np.float32))
