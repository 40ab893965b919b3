"""Data loaders: CIFAR-10 on tiny batch files in the official pickle format, and the shipped digits."""

from __future__ import annotations

import _compat_pickle
import copyreg
import os
import pickle
import pickletools
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.data_utils import (
    CIFAR10_URL,
    default_CIFAR10_dir,
    get_CIFAR10_data,
    get_digits_data,
    load_CIFAR10,
    load_CIFAR_batch,
    load_digits,
)

from cifar_format import Py2Pickler, write_cifar10_folder, write_py2_batch

PER_BATCH = 20
# Every global the official files name (checked on the fixture below), written as Python 2 NumPy wrote them.
OFFICIAL_GLOBALS = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _dump(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar(tmp_path):
    """A CIFAR-10 folder of 5 data batches and a test batch, PER_BATCH random images each, and the raw arrays."""
    rng = np.random.default_rng(0)
    raw = {}
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=PER_BATCH)
        write_py2_batch(tmp_path / name, data, labels, name)
        raw[name] = (data, labels)
    train_data = np.concatenate([raw[f"data_batch_{b}"][0] for b in range(1, 6)])
    train_labels = np.concatenate([raw[f"data_batch_{b}"][1] for b in range(1, 6)])
    return tmp_path, (train_data, train_labels), raw["test_batch"]


def test_load_CIFAR_batch_pixel_layout(cifar):
    root, _, (data, labels) = cifar
    X, y = load_CIFAR_batch(root / "test_batch")
    assert X.shape == (PER_BATCH, 32, 32, 3) and X.dtype == np.float64
    assert y.shape == (PER_BATCH,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    # A row is the red 32x32 plane, then green, then blue.
    for i, r, c, ch in [(0, 0, 0, 0), (3, 5, 31, 1), (PER_BATCH - 1, 31, 7, 2)]:
        assert X[i, r, c, ch] == data[i, ch * 1024 + r * 32 + c]


def test_load_CIFAR_batch_accepts_bytes_keys(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    with open(tmp_path / "b", "wb") as f:
        pickle.dump({b"data": data, b"labels": [1, 2]}, f)
    X, y = load_CIFAR_batch(tmp_path / "b")
    np.testing.assert_array_equal(X.transpose(0, 3, 1, 2).reshape(2, -1), data)
    np.testing.assert_array_equal(y, [1, 2])


def test_load_CIFAR_batch_rejects_bad_files(tmp_path):
    with open(tmp_path / "wrong_shape", "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"'data' must have shape \(N, 3072\), got \(2, 100\)"):
        load_CIFAR_batch(tmp_path / "wrong_shape")
    with open(tmp_path / "no_labels", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match="'labels' entry"):
        load_CIFAR_batch(tmp_path / "no_labels")


def test_fixture_batches_are_in_the_official_format(cifar):
    # Protocol 2, and exactly the globals the official files name: what the restricted unpickler must allow.
    raw = (cifar[0] / "test_batch").read_bytes()
    assert raw[:2] == b"\x80\x02"
    named = {arg for op, arg, _ in pickletools.genops(raw) if "GLOBAL" in op.name}
    assert named == OFFICIAL_GLOBALS
    assert not any(op.name in ("BINUNICODE", "BINBYTES") for op, _, _ in pickletools.genops(raw))


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("labels_as", ["list", "array", "numpy ints"])
def test_load_CIFAR_batch_accepts_python3_repickles(tmp_path, protocol, labels_as):
    # Python 3 copies of a batch: bytes via _codecs.encode (protocol 2), BINBYTES (3, 4), in-band buffers (5);
    # labels as a list, an int array, or a list of NumPy ints (numpy.core.multiarray.scalar).
    data, labels = _pixels(3), np.array([9, 0, 4])
    stored = {"list": labels.tolist(), "array": labels, "numpy ints": list(labels)}[labels_as]
    path = _dump(tmp_path / "b", {"data": data, "labels": stored}, protocol)
    X, y = load_CIFAR_batch(path)
    np.testing.assert_array_equal(X.transpose(0, 3, 1, 2).reshape(3, -1), data)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize(
    "data",
    [
        np.asfortranarray(_pixels(2)),
        _pixels(2).astype(">u2"),
        _pixels(2).astype(np.int64),
    ],
    ids=["fortran-order", "big-endian-uint16", "int64"],
)
def test_load_CIFAR_batch_accepts_any_integer_pixels_in_0_255(tmp_path, data):
    X, _ = load_CIFAR_batch(_dump(tmp_path / "b", {"data": data, "labels": [1, 2]}, 2))
    np.testing.assert_array_equal(X.transpose(0, 3, 1, 2).reshape(2, -1), data)


@pytest.mark.parametrize(
    "data, expected",
    [
        (_pixels(2).astype(np.float64), r"'data' must hold integer pixel values 0\.\.255 .*got float64"),
        (_pixels(2).astype(bool), r"'data' must hold integer pixel values 0\.\.255 .*got bool"),
        (np.full((2, 3072), 256, np.int16), r"'data' must hold pixel values 0\.\.255, got 256"),
        (np.full((2, 3072), -1, np.int64), r"'data' must hold pixel values 0\.\.255, got -1"),
        (np.zeros(3072, np.uint8), r"'data' must have shape \(N, 3072\), got \(3072,\)"),
        (np.zeros((2, 32, 32, 3), np.uint8), r"'data' must have shape \(N, 3072\), got \(2, 32, 32, 3\)"),
        (b"\x00" * 6144, r"'data' must be a NumPy array of shape \(N, 3072\), got str"),
        ([[0] * 3072] * 2, r"'data' must be a NumPy array of shape \(N, 3072\), got list"),
    ],
    ids=["float", "bool", "256", "negative", "1-d", "nhwc", "py2-str", "list"],
)
def test_load_CIFAR_batch_refuses_bad_data(tmp_path, data, expected):
    path = write_py2_batch(tmp_path / "data_batch_1", data, [0, 1])
    with pytest.raises(ValueError, match=expected) as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


_BAD_LABELS = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=10),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
    st.lists(st.integers(0, 9), max_size=2),
)


@_FUZZ
@given(good=st.lists(st.integers(0, 9), max_size=4), bad=_BAD_LABELS, data=st.data())
def test_load_CIFAR_batch_refuses_labels_outside_0_to_9(tmp_path, good, bad, data):
    where = data.draw(st.integers(0, len(good)), label="where")
    labels = good[:where] + [bad] + good[where:]
    path = write_py2_batch(tmp_path / "data_batch_1", _pixels(len(labels)), labels)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 10\)") as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value) and f"at index {where}" in str(info.value)


@pytest.mark.parametrize(
    "labels, expected",
    [
        ([0.5, 1], r"labels must be integers in \[0, 10\), got 0\.5 at index 0"),
        ([4, 10], r"labels must be integers in \[0, 10\), got 10 at index 1"),
        (np.array([3, 10]), r"got 10 at index 1"),
        (np.array([-1, 3]), r"got -1 at index 0"),
        (np.array([0.5, 1.0]), r"'labels' must be a list of integers or an integer array, got a float64 array"),
        (np.array([[1, 2]]), r"'labels' must be one-dimensional, got shape \(1, 2\)"),
        ("01", r"'labels' must be a list of integers or an integer array, got str"),
    ],
)
def test_load_CIFAR_batch_refuses_bad_labels(tmp_path, labels, expected):
    path = _dump(tmp_path / "b", {"data": _pixels(2), "labels": labels}, 2)
    with pytest.raises(ValueError, match=expected) as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is empty"),
        (b"<html>404 Not Found</html>", r"is not a pickle of protocol 2 or later \(first bytes b'<html>40'"),
        (b"\x1f\x8b\x08\x00rest", "is gzip-compressed"),
        (b"\x80\x02", "is truncated"),
        (b"\x80\x09}.", "is damaged: ValueError: unsupported pickle protocol: 9"),
        (b"\x80\x02]q\x00.", r"is not a CIFAR-10 batch: expected a dict with a 'data' entry, got list"),
        (b"\x80\x02}q\x00(\x01\x02\x03.", r"is damaged: at position 6, opcode b'\\x01' unknown"),
    ],
    ids=["empty", "html", "gzip", "header-only", "protocol-9", "list", "garbage"],
)
def test_load_CIFAR_batch_damaged_files_name_the_file(tmp_path, content, expected):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


class _SmallBatch:
    """A valid 2-image batch in the official format, and the byte offsets of everything outside its pixels."""

    def __init__(self, path):
        self.raw = write_py2_batch(path, _pixels(2), [3, 7]).read_bytes()
        ops = list(pickletools.genops(self.raw))
        payload = next(pos for op, arg, pos in ops if op.name == "BINSTRING" and len(arg) == 2 * 3072)
        self.structure = [i for i in range(len(self.raw)) if not payload + 5 <= i < payload + 5 + 2 * 3072]

    def __repr__(self):  # hypothesis prints the fixtures of a failing example
        return f"<{len(self.raw)}-byte batch>"


@pytest.fixture(scope="module")
def small_batch(tmp_path_factory):
    return _SmallBatch(tmp_path_factory.mktemp("small") / "data_batch_1")


@_FUZZ
@given(data=st.data())
def test_load_CIFAR_batch_truncated_anywhere_is_refused(tmp_path, small_batch, data):
    raw = small_batch.raw
    cut = data.draw(st.integers(2, len(raw) - 1), label="cut")
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw[:cut])
    with pytest.raises(ValueError, match="is truncated") as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


@_FUZZ
@given(data=st.data())
def test_load_CIFAR_batch_corrupted_structure_loads_valid_data_or_is_refused(tmp_path, small_batch, data):
    # Changed pixels are undetectable, so the fuzzing targets the pickle's structure: whatever happens, the result
    # is a valid batch or a ValueError naming the file, never a raw unpickling error.
    raw, structure = small_batch.raw, small_batch.structure
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        damaged[data.draw(st.sampled_from(structure), label="at")] = data.draw(st.integers(0, 255), label="to")
    path = tmp_path / "data_batch_1"
    path.write_bytes(bytes(damaged))
    try:
        X, y = load_CIFAR_batch(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        assert X.dtype == np.float64 and X.shape[1:] == (32, 32, 3) and 0 <= X.min() and X.max() <= 255
        assert y.dtype == np.int64 and y.shape == X.shape[:1] and np.all((0 <= y) & (y < 10))


class _Payload:
    """Unpickling this runs ``func(*args)``: a stand-in for a malicious batch."""

    def __init__(self, func, *args):
        self.reduce = (func, args)

    def __reduce__(self):
        return self.reduce


def _payloads(marker):
    import builtins
    import subprocess

    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.open": _Payload(open, str(marker), "w"),
    }


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "subprocess.call", "builtins.open"])
@pytest.mark.parametrize("place", ["top", "labels", "inside labels"])
def test_load_CIFAR_batch_never_runs_pickled_code(tmp_path, protocol, name, place):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[name]
    func = payload.reduce[0]
    batch = {
        "top": payload,
        "labels": {"data": _pixels(1), "labels": payload},
        "inside labels": {"data": _pixels(1), "labels": [1, payload]},
    }[place]
    path = _dump(tmp_path / "data_batch_1", batch, protocol)
    with pytest.raises(ValueError) as info:
        load_CIFAR_batch(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message
    if protocol >= 2:
        # Protocol 2 writes Python 2 names (builtins.exec is __builtin__.exec), and the message quotes the file.
        written = (func.__module__, func.__name__)
        if protocol < 3:
            module = _compat_pickle.REVERSE_IMPORT_MAPPING.get(written[0], written[0])
            written = _compat_pickle.REVERSE_NAME_MAPPING.get(written, (module, written[1]))
        assert f"refusing to unpickle global '{'.'.join(written)}'" in message
        assert "a CIFAR-10 batch holds only dicts, lists, bytes, str, ints and NumPy arrays" in message
    else:
        assert "is not a pickle" in message


def test_load_CIFAR_batch_refuses_copyreg_extension_codes(tmp_path):
    # An EXT opcode names a global by a code registered with copyreg; once any unpickler in the process resolved it,
    # the function comes from copyreg's cache without find_class being asked.
    marker = tmp_path / "pwned"
    code = 0x7FFF_FFF0
    copyreg.add_extension(os.system.__module__, os.system.__name__, code)
    try:
        assert pickle.loads(b"\x80\x02\x84" + code.to_bytes(4, "little") + b".") is os.system
        path = _dump(tmp_path / "data_batch_1", _payloads(marker)["os.system"], 2)
        assert b"\x84" + code.to_bytes(4, "little") in path.read_bytes()
        with pytest.raises(ValueError, match="refusing a copyreg extension code") as info:
            load_CIFAR_batch(path)
    finally:
        copyreg.remove_extension(os.system.__module__, os.system.__name__, code)
    assert not marker.exists() and str(path) in str(info.value)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_load_CIFAR_batch_refuses_object_arrays(tmp_path, protocol):
    # An object array would carry arbitrary pickled objects: refused at its dtype, before its items are read.
    marker = tmp_path / "pwned"
    smuggler = np.array([1, _payloads(marker)["os.system"]], dtype=object)
    path = _dump(tmp_path / "b", {"data": _pixels(2), "labels": smuggler}, protocol)
    with pytest.raises(ValueError, match=r"refusing NumPy dtype 'O8'.* plain integer and float arrays") as info:
        load_CIFAR_batch(path)
    assert not marker.exists() and str(path) in str(info.value)


@pytest.mark.parametrize(
    "state",
    [(3, "|", None, None, None, -1, -1, 63), (3, "|", None, ("a",), {"a": (None, 0)}, 1, 1, 0), (3, "?") + (None,) * 6],
    ids=["object-flags", "fields", "byteorder"],
)
def test_load_CIFAR_batch_refuses_tampered_dtype_state(tmp_path, state):
    # NumPy's own dtype.__setstate__ accepts flags claiming a uint8 dtype holds objects: never handed to it.
    class Tampered(Py2Pickler):
        def reducer_override(self, obj):
            return (np.dtype, ("u1", 0, 1), state) if isinstance(obj, np.dtype) else NotImplemented

    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        Tampered(f, protocol=2).dump({b"data": _pixels(1), b"labels": [0]})
    with pytest.raises(ValueError, match=r"refusing NumPy dtype state") as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        # BUILD on an allowed global would set attributes on the loader's own objects, for every later load.
        (b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00aK\x01sb.", "refusing to set state on 'numpy.dtype'"),
        (b"\x80\x02cnumpy\nndarray\nK\x03\x85R.", "numpy.ndarray is only allowed as the first argument"),
        (
            b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R.",
            "numpy.ndarray is the only type",
        ),
        (b"\x80\x02cnumpy\ndtype\nU\x04i4,fK\x00K\x01\x87R.", "refusing NumPy dtype 'i4,f'"),
        (
            b"\x80\x02}U\x04datacnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87Rs.",
            "'data' is a NumPy array without its data",
        ),
    ],
    ids=["build-on-global", "ndarray-called", "reconstruct-dtype", "structured-dtype", "array-without-state"],
)
def test_load_CIFAR_batch_refuses_misused_numpy_globals(tmp_path, content, expected):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)
    # Nothing leaked into the next load.
    X, _ = load_CIFAR_batch(write_py2_batch(tmp_path / "good", _pixels(1), [5]))
    assert X.shape == (1, 32, 32, 3)


def test_load_CIFAR_batch_huge_memo_index_allocates_nothing(tmp_path):
    # The C unpickler sizes its memo array by the largest index a file names: these 12 bytes made it allocate and
    # zero 2**31 pointers (16 GiB).
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02K\x01r\xff\xff\xff\x7f.")
    with pytest.raises(ValueError, match="is not a CIFAR-10 batch: expected a dict"):
        load_CIFAR_batch(path)


@pytest.mark.parametrize("head", [b"", pickle.PROTO + bytes([2])], ids=["zeros", "pickle-header"])
def test_a_huge_batch_file_is_refused_by_size_before_reading(tmp_path, head):
    # 8 GiB, sparse on disk: read whole it was a MemoryError (or 8 GiB of RAM); the real batches are 31 MB.
    root = tmp_path / "cifar"
    write_cifar10_folder(root, per_batch=2)
    path = root / "data_batch_1"
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(8 << 30)
    expected = rf"^'{path}' is {8 << 30} bytes, more than any CIFAR-10 batch \(the official ones are about 31 MB"
    with pytest.raises(ValueError, match=expected):
        load_CIFAR_batch(path)
    with pytest.raises(ValueError, match=expected):
        load_CIFAR10(root)


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: load_CIFAR_batch(3), "filename must be a path (str or os.PathLike), got int"),
        (lambda: load_CIFAR10(None), "ROOT must be a path (str or os.PathLike), got NoneType"),
        (lambda: get_CIFAR10_data(cifar10_dir=["a"]), "cifar10_dir must be a path (str or os.PathLike), got list"),
    ],
)
def test_cifar_paths_must_be_path_like(call, expected):
    with pytest.raises(TypeError) as info:
        call()
    assert str(info.value) == expected


def test_load_CIFAR10_concatenates_batches_in_order(cifar):
    root, (train_data, train_labels), (test_data, test_labels) = cifar
    X_train, y_train, X_test, y_test = load_CIFAR10(root)
    assert X_train.shape == (5 * PER_BATCH, 32, 32, 3) and X_test.shape == (PER_BATCH, 32, 32, 3)
    np.testing.assert_array_equal(X_train.transpose(0, 3, 1, 2).reshape(-1, 3072), train_data)
    np.testing.assert_array_equal(y_train, train_labels)
    np.testing.assert_array_equal(X_test.transpose(0, 3, 1, 2).reshape(-1, 3072), test_data)
    np.testing.assert_array_equal(y_test, test_labels)


def test_get_CIFAR10_data_splits_and_nchw(cifar):
    root, (train_data, train_labels), (test_data, test_labels) = cifar
    data = get_CIFAR10_data(70, 20, 10, subtract_mean=False, cifar10_dir=root)
    nchw = train_data.reshape(-1, 3, 32, 32).astype(np.float64)
    expected = {
        "X_train": nchw[:70],
        "y_train": train_labels[:70],
        "X_val": nchw[70:90],
        "y_val": train_labels[70:90],
        "X_test": test_data.reshape(-1, 3, 32, 32)[:10].astype(np.float64),
        "y_test": test_labels[:10],
    }
    assert sorted(data) == sorted(expected)
    for key, value in expected.items():
        assert data[key].dtype == (np.float64 if key.startswith("X") else np.int64), key
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert data["X_train"].flags.c_contiguous


def test_get_CIFAR10_data_subtracts_training_mean(cifar):
    root, (train_data, _), (test_data, _) = cifar
    data = get_CIFAR10_data(50, 30, 20, cifar10_dir=root, dtype=np.float32)
    nchw = train_data.reshape(-1, 3, 32, 32).astype(np.float64)
    mean = nchw[:50].mean(axis=0)
    assert data["X_train"].dtype == np.float32
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(data["X_val"], nchw[50:80] - mean, atol=1e-4)
    np.testing.assert_allclose(data["X_test"], test_data.reshape(-1, 3, 32, 32) - mean, atol=1e-4)


@pytest.fixture
def clean_env(monkeypatch, tmp_path_factory):
    """No CIFAR-10 or cache variable from the developer's shell, and a fresh HOME: the default cache is in it."""
    for name in ("XPNET_CIFAR10_DIR", "XPNET_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what os.path.expanduser reads on Windows
    return home


def test_default_CIFAR10_dir_order(clean_env, monkeypatch, tmp_path):
    assert default_CIFAR10_dir() == str(clean_env / ".cache" / "xpnet" / "cifar-10-batches-py")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore relative paths
    assert default_CIFAR10_dir() == str(clean_env / ".cache" / "xpnet" / "cifar-10-batches-py")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_CIFAR10_dir() == str(tmp_path / "xdg" / "xpnet" / "cifar-10-batches-py")
    monkeypatch.setenv("XPNET_CACHE_DIR", str(tmp_path / "mine"))
    assert default_CIFAR10_dir() == str(tmp_path / "mine" / "cifar-10-batches-py")
    monkeypatch.setenv("XPNET_CACHE_DIR", "")  # empty as unset
    assert default_CIFAR10_dir() == str(tmp_path / "xdg" / "xpnet" / "cifar-10-batches-py")


def test_get_CIFAR10_data_lookup_order(clean_env, monkeypatch, tmp_path):
    # Three folders with different images: the argument wins over the variable, the variable over the cache.
    places = {
        "cache": clean_env / ".cache" / "xpnet" / "cifar-10-batches-py",
        "env": tmp_path / "env" / "cifar-10-batches-py",
        "arg": tmp_path / "arg",
    }
    labels = {}
    for seed, (name, folder) in enumerate(places.items()):
        labels[name] = write_cifar10_folder(folder, per_batch=4, seed=seed)["data_batch_1"][1]

    def first_labels(**kwargs):
        return get_CIFAR10_data(4, 0, 0, **kwargs)["y_train"]

    np.testing.assert_array_equal(first_labels(), labels["cache"])
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(places["env"]))
    np.testing.assert_array_equal(first_labels(), labels["env"])
    np.testing.assert_array_equal(first_labels(cifar10_dir=places["arg"]), labels["arg"])
    np.testing.assert_array_equal(first_labels(cifar10_dir=str(places["arg"]).encode()), labels["arg"])


def test_a_set_variable_never_falls_back_to_the_cache(clean_env, monkeypatch, tmp_path):
    write_cifar10_folder(clean_env / ".cache" / "xpnet" / "cifar-10-batches-py", per_batch=2)
    missing = tmp_path / "typo"
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(missing))
    with pytest.raises(FileNotFoundError) as info:
        get_CIFAR10_data(2, 0, 0)
    assert f"no CIFAR-10 in {str(missing)!r} (from XPNET_CIFAR10_DIR): it does not exist" in str(info.value)


def test_cs231n_folder_under_the_current_one_is_read_after_the_cache(clean_env, monkeypatch, tmp_path):
    # Where CS231n's get_datasets.sh puts the data: a notebook run from its assignment folder finds it.
    assignment = tmp_path / "assignment2"
    write_cifar10_folder(assignment / "cs231n" / "datasets" / "cifar-10-batches-py", per_batch=3, seed=1)
    monkeypatch.chdir(assignment)
    local = get_CIFAR10_data(3, 0, 0, subtract_mean=False)
    cache = clean_env / ".cache" / "xpnet" / "cifar-10-batches-py"
    write_cifar10_folder(cache, per_batch=3, seed=2)
    cached = get_CIFAR10_data(3, 0, 0, subtract_mean=False)  # the cache comes first once it holds the data
    assert not np.array_equal(local["X_train"], cached["X_train"])
    shutil.rmtree(cache)
    np.testing.assert_array_equal(get_CIFAR10_data(3, 0, 0, subtract_mean=False)["X_train"], local["X_train"])
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(tmp_path / "typo"))  # a set variable is never skipped
    with pytest.raises(FileNotFoundError, match="from XPNET_CIFAR10_DIR"):
        get_CIFAR10_data(3, 0, 0)
    with pytest.raises(FileNotFoundError, match="from cifar10_dir"):
        get_CIFAR10_data(3, 0, 0, cifar10_dir=tmp_path / "typo")


def test_missing_data_says_how_to_get_it(clean_env):
    default = clean_env / ".cache" / "xpnet" / "cifar-10-batches-py"
    with pytest.raises(FileNotFoundError) as info:
        get_CIFAR10_data()
    message = str(info.value)
    expected = [
        f"no CIFAR-10 in {str(default)!r} (the default folder: cifar10_dir is not given and XPNET_CIFAR10_DIR "
        "is not set): it does not exist",
        "get_CIFAR10_data(download=True) downloads it into that folder",
        "python -m xpnet.data_utils download-cifar10 [DIR]",
        f"download {CIFAR10_URL}",
        "tar -xzf cifar-10-python.tar.gz",
        "cifar10_dir=",
        "XPNET_CIFAR10_DIR",
        "XPNET_CACHE_DIR",
        "then ./cs231n/datasets/cifar-10-batches-py under the current folder (where CS231n's get_datasets.sh puts it)",
    ]
    for text in expected:
        assert text in message, text


def test_get_CIFAR10_data_missing_directory(tmp_path, clean_env):
    missing = tmp_path / "cifar-10-batches-py"
    with pytest.raises(FileNotFoundError) as info:
        get_CIFAR10_data(cifar10_dir=missing)
    for text in (
        f"no CIFAR-10 in {str(missing)!r} (from cifar10_dir)",
        CIFAR10_URL,
        "XPNET_CIFAR10_DIR",
        "download=True",
    ):
        assert text in str(info.value)
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="give the folder inside it instead"):
        get_CIFAR10_data(cifar10_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="it lacks data_batch_1"):
        get_CIFAR10_data(cifar10_dir=missing)
    write_cifar10_folder(missing, per_batch=2)
    os.unlink(missing / "test_batch")
    with pytest.raises(FileNotFoundError, match="it lacks test_batch"):
        get_CIFAR10_data(cifar10_dir=missing)


def test_download_flag_is_checked_before_anything(tmp_path):
    with pytest.raises(TypeError, match="download must be True or False, got 'yes'"):
        get_CIFAR10_data(cifar10_dir=tmp_path / "missing", download="yes")
    assert not (tmp_path / "missing").exists()


def test_get_CIFAR10_data_rejects_counts_beyond_the_data(cifar):
    root = cifar[0]
    with pytest.raises(ValueError, match=r"num_training \+ num_validation must be at most 100.*got 90 \+ 20"):
        get_CIFAR10_data(90, 20, 5, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_test must be at most 20, got 21"):
        get_CIFAR10_data(10, 10, 21, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_validation must be an int >= 0, got -1"):
        get_CIFAR10_data(10, -1, 5, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_training must be an int >= 1, got 0"):
        get_CIFAR10_data(0, 10, 5, cifar10_dir=root)


@pytest.mark.parametrize(
    "kwargs, error, expected",
    [
        ({"num_training": 10.0}, TypeError, "num_training must be an int >= 1, got 10.0"),
        ({"num_validation": True}, TypeError, "num_validation must be an int >= 0, got True"),
        ({"num_test": "5"}, TypeError, "num_test must be an int >= 0, got '5'"),
        ({"num_test": -3}, ValueError, "num_test must be an int >= 0, got -3"),
        ({"num_training": np.int64(0)}, ValueError, "num_training must be an int >= 1, got 0"),
        ({"subtract_mean": "no"}, TypeError, "subtract_mean must be True or False, got 'no'"),
        ({"dtype": np.int32}, TypeError, "dtype must be a floating NumPy dtype (np.float32 or np.float64), got "),
        ({"dtype": "uint8"}, TypeError, "dtype must be a floating NumPy dtype (np.float32 or np.float64), got 'uint8'"),
        ({"dtype": np.complex128}, TypeError, "dtype must be a floating NumPy dtype"),
        ({"dtype": "no such type"}, TypeError, "dtype must be a floating NumPy dtype"),
    ],
)
@pytest.mark.parametrize("loader", ["cifar", "digits"])
def test_loaders_refuse_bad_arguments_before_reading(tmp_path, kwargs, error, expected, loader):
    # cifar10_dir does not exist: the argument error comes first, before any file is read.
    with pytest.raises(error) as info:
        if loader == "digits":
            get_digits_data(**kwargs)
        else:
            get_CIFAR10_data(**kwargs, cifar10_dir=tmp_path / "missing")
    assert str(info.value).startswith(expected)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, bool])
def test_digits_pixels_are_never_truncated_to_integers(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating NumPy dtype"):
        get_digits_data(dtype=dtype)
    assert get_digits_data(dtype=np.float16)["X_train"].dtype == np.float16


@pytest.mark.parametrize(
    "seed, error, expected",
    [
        (1.5, TypeError, "seed must be an int >= 0, a numpy.random.Generator or None, got 1.5"),
        ("0", TypeError, "got '0'"),
        (-1, ValueError, "-1"),
    ],
)
def test_digits_bad_seed_is_named(seed, error, expected):
    with pytest.raises(error, match="seed must be") as info:
        get_digits_data(seed=seed)
    assert expected in str(info.value)


def test_digits_shapes_dtypes_and_labels():
    data = get_digits_data()
    sizes = {"train": 1797 - 400, "val": 200, "test": 200}
    for split, n in sizes.items():
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        assert X.shape == (n, 1, 8, 8) and X.dtype == np.float32, split
        assert y.shape == (n,) and y.dtype == np.int64, split
        assert y.min() >= 0 and y.max() <= 9, split
    assert set(np.unique(data["y_train"])) == set(range(10))
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0.0, atol=1e-5)


def test_digits_splits_partition_the_shipped_images():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    data = get_digits_data(300, 100, subtract_mean=False, seed=3)
    X = np.concatenate([data["X_train"], data["X_val"], data["X_test"]])
    y = np.concatenate([data["y_train"], data["y_val"], data["y_test"]])
    assert data["X_val"].shape[0] == 300 and data["X_test"].shape[0] == 100
    assert X.min() == 0.0 and X.max() == 1.0
    # Undo the /16 scaling: every shipped image (with its label) appears exactly once across the three splits.
    pairs = sorted(zip(map(bytes, (X * 16).round().astype(np.uint8).reshape(len(X), 64)), y.tolist(), strict=True))
    originals = sorted(zip(map(bytes, images.reshape(-1, 64)), labels.tolist(), strict=True))
    assert pairs == originals


def test_digits_mean_subtraction_uses_training_mean():
    raw = get_digits_data(subtract_mean=False, seed=1)
    centred = get_digits_data(seed=1)
    mean = raw["X_train"].mean(axis=0)
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(centred[f"X_{split}"], raw[f"X_{split}"] - mean, atol=1e-6)
        np.testing.assert_array_equal(centred[f"y_{split}"], raw[f"y_{split}"])


def test_digits_seeded_shuffle_is_deterministic():
    a, b, c = get_digits_data(seed=7), get_digits_data(seed=7), get_digits_data(seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["y_train"], c["y_train"])


def test_digits_num_training_and_dtype():
    data = get_digits_data(100, 100, num_training=50, dtype=np.float64)
    assert data["X_train"].shape == (50, 1, 8, 8) and data["X_train"].dtype == np.float64
    with pytest.raises(ValueError, match="num_training must be at most 1597"):
        get_digits_data(100, 100, num_training=1598)
    with pytest.raises(ValueError, match="num_validation \\+ num_test must leave training images"):
        get_digits_data(1000, 797)
    with pytest.raises(ValueError, match="num_training must be an int >= 1, got 0"):
        get_digits_data(num_training=0)
    with pytest.raises(TypeError, match="num_test must be an int >= 0, got 2.5"):
        get_digits_data(10, 2.5)
