"""The public seams other modules use instead of private names: Solver.load_checkpoint, check_data, setting
checkpoint_name after construction, and the atomic writes every file goes through (issue 19)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from xpnet import _atomic
from xpnet.classifiers import FullyConnectedNet
from xpnet.solver import Solver, check_data

from helpers import blobs, device_under_test, to_np

DATA = blobs(n_train=40, n_val=20, dim=5, classes=3)


def _solver(xp, **kwargs) -> Solver:
    np.random.seed(0)
    device = device_under_test(xp)
    model = FullyConnectedNet([8], input_dim=5, num_classes=3, normalization="batchnorm", xp=xp, device=device)
    kwargs = {"update_rule": "adam", "batch_size": 10, "num_epochs": 2, "verbose": False, "seed": 1, **kwargs}
    return Solver(model, DATA, **kwargs)  # the Solver moves the data to the model's backend and device


def test_load_checkpoint_is_what_resume_from_does(xp, tmp_path):
    _solver(xp, num_epochs=1, checkpoint_name=str(tmp_path / "run")).train()
    path = tmp_path / "run_epoch_1.npz"
    resumed, loaded = _solver(xp, resume_from=path), _solver(xp)
    loaded.load_checkpoint(path)
    for solver in (resumed, loaded):
        solver.train()
    assert loaded.epoch == resumed.epoch == 2
    assert loaded.loss_history == resumed.loss_history and loaded.val_acc_history == resumed.val_acc_history
    for name, value in resumed.model.params.items():
        np.testing.assert_array_equal(to_np(loaded.model.params[name]), to_np(value), err_msg=name)


def test_load_checkpoint_that_raises_changes_nothing(xp, tmp_path):
    _solver(xp, num_epochs=1, checkpoint_name=str(tmp_path / "run")).train()
    solver = _solver(xp, update_rule="sgd")
    before = {name: to_np(value).copy() for name, value in solver.model.params.items()}
    with pytest.raises(ValueError, match="written with update_rule 'adam', this Solver uses 'sgd'"):
        solver.load_checkpoint(tmp_path / "run_epoch_1.npz")
    assert solver.epoch == 0 and solver.loss_history == [] and solver.best_params == {}
    for name, value in solver.model.params.items():
        np.testing.assert_array_equal(to_np(value), before[name], err_msg=name)


def test_check_data_names_the_problem():
    check_data(DATA)
    with pytest.raises(TypeError, match=r"data must be a dict with keys \['X_train', 'y_train', 'X_val', 'y_val'\]"):
        check_data([DATA])
    with pytest.raises(ValueError, match=r"data is missing \['y_val'\]"):
        check_data({k: v for k, v in DATA.items() if k != "y_val"})


def test_setting_checkpoint_name_later_checks_the_folder_as_construction_does(tmp_path):
    solver = _solver(np)
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(OSError, match="checkpoint_name .*cannot write files in folder"):
        solver.checkpoint_name = str(tmp_path / "file" / "run")
    assert solver.checkpoint_name is None, "a refused name must not be kept"
    solver.checkpoint_name = str(tmp_path / "new" / "run")
    assert (tmp_path / "new").is_dir() and os.listdir(tmp_path / "new") == []
    solver.train()
    assert sorted(os.listdir(tmp_path / "new")) == ["run_epoch_1.npz", "run_epoch_2.npz"]


def test_atomic_write_text_and_bytes_replace_the_file_durably(tmp_path, monkeypatch):
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
    target = tmp_path / "sub" / "results.json"
    _atomic.atomic_write_text(target, "é\n")
    assert target.read_bytes() == "é\n".encode() and events == ["fsync file", "rename", "fsync folder"]
    _atomic.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01" and os.listdir(tmp_path / "sub") == ["results.json"]


def test_an_atomic_write_that_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "count"
    _atomic.atomic_write_text(target, "1")
    with pytest.raises(KeyError), _atomic.atomic_write(target, text=True) as fh:
        fh.write("2")
        raise KeyError("interrupted")
    assert target.read_text() == "1" and os.listdir(tmp_path) == ["count"]


@pytest.mark.skipif(os.name == "nt", reason="flock is POSIX")
def test_try_lock_is_refused_while_another_open_file_holds_the_lock(tmp_path):
    path = tmp_path / "lock"
    path.touch()
    first, second = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        assert _atomic.lock(first) is True
        assert _atomic.try_lock(second) is False
        os.close(first)
        first = -1
        assert _atomic.try_lock(second) is True  # the holder closed its file: the lock went with it
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)
