"""Successive halving in xpnet.sweep (``sweep(..., halving=...)``): the schedule, exactness against the full grid
(resume from the rung's checkpoint is exact), the same records on any cluster (real Dask LocalClusters, as in
test_sweep.py), failures dropping out with their status, results files, the curves plot and the example."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import importorskip_extra
from test_examples import _assert_png, _run

from xpnet.classifiers import FullyConnectedNet
from xpnet.data_utils import get_digits_data
from xpnet.solver import Solver
from xpnet.sweep import SweepResults, grid, sweep
from xpnet.sweep._checks import rungs

distributed = importorskip_extra("distributed")

EPOCHS = 4
HALVING = {"min_epochs": 1, "eta": 2}  # rungs of 1, 2 and 4 epochs
CONFIGS = grid(weight_scale=[1e-2, 1e-1], lr=[1e-3, 1e-2, 1e-1]) + [
    {"weight_scale": 1e120, "lr": 1e-3},  # diverges at once
    {"weight_scale": "fail", "lr": 1e-3},  # raises in make_solver
]


@pytest.fixture(scope="module")
def data():
    d = get_digits_data()
    return {
        "X_train": d["X_train"][:100],
        "y_train": d["y_train"][:100],
        "X_val": d["X_val"][:50],
        "y_val": d["y_val"][:50],
    }


def make_solver(config, data, epochs=EPOCHS):
    if config["weight_scale"] == "fail":
        raise RuntimeError("this config fails on purpose")
    model = FullyConnectedNet([16, 16], input_dim=64, weight_scale=config["weight_scale"], dtype="float64")
    solver = Solver(
        model,
        data,
        update_rule="sgd",
        optim_config={"learning_rate": config["lr"]},
        lr_decay=0.9,  # decayed per epoch: a resumed rung must carry the decayed rate on
        num_epochs=epochs,
        batch_size=25,
        verbose=False,
    )
    return solver


class _Quiet(Solver):
    def train(self):
        with np.errstate(all="ignore"):
            super().train()


def make_quiet(config, data):
    solver = make_solver(config, data)
    solver.__class__ = _Quiet  # the diverging config's overflow warnings are errors under pytest
    return solver


def _text(record, drop=("seconds", "worker")):
    """A record as JSON text without where and how long it ran (NaN losses compare equal there)."""
    return json.dumps({k: v for k, v in record.items() if k not in drop}, sort_keys=True, default=repr)


@pytest.fixture(scope="module")
def full(data):
    return sweep(make_quiet, CONFIGS, data=data, seed=3, client="sequential", keep_params=True)


@pytest.fixture(scope="module")
def halving_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("halving")


@pytest.fixture(scope="module")
def halved(data, halving_dir):
    return sweep(
        make_quiet,
        CONFIGS,
        data=data,
        seed=3,
        client="sequential",
        keep_params=True,
        halving=HALVING,
        checkpoint_dir=halving_dir,
    )


def test_rungs_go_up_by_eta_to_num_epochs():
    assert rungs(1, 3, 9) == [1, 3, 9]
    assert rungs(1, 3, 10) == [1, 3, 9, 10]
    assert rungs(2, 2, 5) == [2, 4, 5]
    assert rungs(4, 2, 4) == [4]


@pytest.mark.parametrize(
    "halving, error, match",
    [
        ({"min_epochs": 1, "eta": 3, "rate": 2}, ValueError, "unknown key 'rate'"),
        ({"eta": 3}, ValueError, "lacks the key 'min_epochs'"),
        ({"min_epochs": 1, "eta": 1}, ValueError, r"halving\['eta'\] must be an int >= 2, got 1"),
        ({"min_epochs": 1, "eta": 2.0}, TypeError, r"halving\['eta'\] must be an int >= 2"),
        ({"min_epochs": 0, "eta": 3}, ValueError, r"halving\['min_epochs'\] must be an int >= 1"),
        ({"min_epochs": 5, "eta": 3}, ValueError, r"halving\['min_epochs'\] must be <= the Solver's num_epochs=4"),
        ([1, 3], TypeError, "halving must be None or a dict"),
    ],
)
def test_halving_is_checked_by_key(data, halving, error, match):
    with pytest.raises(error, match=match):
        sweep(make_quiet, CONFIGS[:2], data=data, client="sequential", halving=halving)


def test_schedule_statuses_and_epochs(halved, full):
    # rung 0 (1 epoch): all 8, of which 6 ok; the best ceil(8 / 2) = 4 go to rung 1 (2 epochs), 2 to rung 2 (4).
    assert [r["status"] for r in halved[6:]] == ["diverged", "error"]
    assert all(r["rung"] == 0 for r in halved[6:]) and halved[7]["epochs"] == 0
    by_rung = {k: [r["index"] for r in halved if r["rung"] == k] for k in range(3)}
    assert len(by_rung[1]) == 2 and len(by_rung[2]) == 2, by_rung
    assert {r["status"] for r in halved if r["rung"] < 2 and r["index"] < 6} == {"stopped"}
    assert [r["epochs"] for r in halved if r["rung"] == 2] == [EPOCHS, EPOCHS]
    assert all(r["epochs"] == (1, 2)[r["rung"]] for r in halved[:6] if r["rung"] < 2)
    assert sum(r["epochs"] for r in halved) == 2 * 1 + 2 * 2 + 2 * 4  # each rung continues the one before
    # The promoted ones of rung 0 are the best four by best_val_acc after one epoch (ties: lower index).
    after_one = sorted(range(6), key=lambda i: (-max(full[i]["val_acc_history"][:2]), i))
    assert sorted(after_one[:4]) == sorted(by_rung[1] + by_rung[2])
    assert repr(halved) == "SweepResults(8 trials: 2 ok, 4 stopped, 1 diverged, 1 error)"
    assert halved.best()["rung"] == 2 and halved.best()["index"] in by_rung[2]


def test_survivors_equal_the_full_grid_and_the_stopped_are_its_prefixes(full, halved):
    for h in halved:
        f = full[h["index"]]
        if h["rung"] == 2:
            assert _text(h, ("seconds", "worker", "rung", "best_params")) == _text(
                f, ("seconds", "worker", "rung", "best_params")
            )
            for name, value in f["best_params"].items():
                np.testing.assert_array_equal(h["best_params"][name], value)
        elif h["status"] == "stopped":
            n = len(h["val_acc_history"])
            assert h["val_acc_history"] == f["val_acc_history"][:n]
            assert h["loss_history"] == f["loss_history"][: len(h["loss_history"])]


class _Killer(_Quiet):
    """Kills its own worker process after writing the checkpoint of epoch 3 (inside the last rung, 2 -> 4 epochs),
    on its first attempt only (the marker file says it happened)."""

    marker = ""

    def save_checkpoint(self, path):
        super().save_checkpoint(path)
        if self.epoch == 3 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def make_killer(config, data, *, victim, marker):
    solver = make_quiet(config, data)
    if config == victim:
        solver.__class__ = _Killer
        solver.marker = marker
    return solver


@pytest.fixture(scope="module")
def client2():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


_TRAINED: list[int] = []  # epochs each train() call had left to run, sequential sweeps only


class _Counting(_Quiet):
    def train(self):
        _TRAINED.append(self.num_epochs - self.epoch)
        super().train()


def make_counting(config, data):
    solver = make_quiet(config, data)
    solver.__class__ = _Counting
    return solver


@pytest.mark.parametrize("where", ["again", False])
def test_a_rerun_in_the_same_folder_or_without_checkpoints_gives_the_same_records(data, halved, halving_dir, where):
    # "again": the folder holds every rung's checkpoint (and the last), so each rung resumes from its own and trains
    # nothing; False: a continuing trial trains again from its start, to the same record.
    folder = halving_dir if where == "again" else False
    _TRAINED.clear()
    records = sweep(
        make_counting, CONFIGS, data=data, seed=3, client="sequential", halving=HALVING, checkpoint_dir=folder
    )
    for a, b in zip(records, halved, strict=True):
        assert _text(a, ("seconds", "worker", "best_params")) == _text(b, ("seconds", "worker", "best_params"))
    if where == "again":
        epochs = {int(p.name.rsplit("_", 1)[1][:-4]) for p in halving_dir.glob("trial_*_epoch_*.npz")}
        assert epochs == {1, 2, 4}, epochs  # the rungs' ends: what a rerun (or the next rung) continues from
        # 7 + 4 + 2 train() calls (the failing config builds no Solver), none with epochs left, but the diverged
        # trial's: it diverged before its first checkpoint, so it runs (and diverges) again.
        assert sorted(_TRAINED) == [0] * 12 + [1], _TRAINED  # 7: the failing config never trains
    else:
        assert sorted(_TRAINED) == [1] * 7 + [2] * 4 + [4] * 2, _TRAINED  # from the start at each rung


def test_same_records_sequential_one_and_two_workers(data, halved, client2):
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster, set_as_default=False) as client1:
        one = sweep(make_quiet, CONFIGS, data=data, seed=3, client=client1, keep_params=True, halving=HALVING)
    two = sweep(make_quiet, CONFIGS, data=data, seed=3, client=client2, keep_params=True, halving=HALVING)
    for records in (one, two):
        for a, b in zip(records, halved, strict=True):
            assert _text(a, ("seconds", "worker", "best_params")) == _text(b, ("seconds", "worker", "best_params"))


def test_a_worker_killed_mid_rung_resumes_to_the_same_records(data, halved, client2, tmp_path):
    victim = next(r for r in halved if r["rung"] == 2)
    marker = str(tmp_path / "killed")
    make = functools.partial(make_killer, victim=victim["config"], marker=marker)
    records = sweep(make, CONFIGS, data=data, seed=3, client=client2, halving=HALVING, checkpoint_dir=tmp_path / "ck")
    assert os.path.exists(marker), "the victim's worker was not killed"
    for a, b in zip(records, halved, strict=True):
        assert _text(a, ("seconds", "worker", "best_params")) == _text(b, ("seconds", "worker", "best_params"))


def test_save_load_table_and_curves(halved, tmp_path):
    halved.save(tmp_path / "h.json")
    loaded = SweepResults.load(tmp_path / "h.json")
    for a, b in zip(loaded, halved, strict=True):
        assert _text(a, ("best_params",)) == _text(b, ("best_params",))
    assert loaded.best()["index"] == halved.best()["index"]
    table = halved.to_pandas()
    assert list(table["rung"]) == [r["rung"] for r in halved] and "epochs" in table.columns
    doc = json.loads((tmp_path / "h.json").read_text())
    doc["records"][0]["rung"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"records\[0\].rung must be an int >= 0"):
        SweepResults.load(tmp_path / "bad.json")
    for r in doc["records"]:  # a file saved before halving: no epochs, no rung
        del r["rung"], r["epochs"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert SweepResults.load(tmp_path / "old.json").best()["best_val_acc"] == max(
        r["best_val_acc"] for r in halved if r["status"] in ("ok", "stopped")
    )
    _assert_png(Path(halved.plot_curves(tmp_path / "curves.png")))


def test_example_halving(tmp_path):
    args = ["--backend", "numpy", "--epochs", 3, "--num-train", 100, "--lrs", "1e-3", "1e-2", "3e-2", "--regs", 0]
    out = _run("sweep_cifar.py", *args, "--workers", 0, "--halving", 1, 3, cwd=tmp_path)
    assert "3 runs in " in out and "SweepResults(3 trials: 1 ok, 2 stopped)" in out, out
    assert "epochs trained: 5 (without halving: 9)" in out, out
    _assert_png(tmp_path / "sweep_curves.png")


def test_bench_halving_checks_before_timing():
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    done = subprocess.run(
        [sys.executable, "bench_halving.py", "--quick"], cwd=bench, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records equal to the full grid's" in done.stdout, done.stdout
    assert re.search(r"halving +12 +15 ", done.stdout), done.stdout  # 9 + 3 trial runs, 9*1 + 3*2 epochs
