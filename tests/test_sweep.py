"""xpnet.sweep on real Dask clusters (no mocks): reproducible records, resume after a killed worker, failures
reported per trial, results files, GPU pinning. NumPy only: the sweep moves configs and records, not arrays of a
backend, and each trial is an ordinary Solver run (tested on every backend in test_solver.py)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from conftest import importorskip_extra
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import vis_utils
from xpnet.classifiers import FullyConnectedNet
from xpnet.data_utils import get_digits_data
from xpnet.solver import Solver
from xpnet.sweep import SweepResults, grid, sweep

# Skipped without distributed (an optional extra), failed instead where XPNET_REQUIRE_EXTRAS names it (CI).
distributed = importorskip_extra("distributed")

# No warning filter: Dask logs a killed worker (nanny restart, closed comms) through logging, not warnings, and
# dashboard_address=":0" keeps LocalCluster from warning about port 8787 being taken.

CONFIGS = grid(weight_scale=[1e-2, 1e-1], lr=[1e-3, 1e-2]) + [
    {"weight_scale": 1e120, "lr": 1e-3},  # diverges: the first loss is NaN
    {"weight_scale": "fail", "lr": 1e-3},  # raises in make_solver
]
EPOCHS = 3


@pytest.fixture(scope="module")
def data():
    d = get_digits_data()
    return {
        "X_train": d["X_train"][:100],
        "y_train": d["y_train"][:100],
        "X_val": d["X_val"][:50],
        "y_val": d["y_val"][:50],
    }


class LoggedSolver(Solver):
    """A Solver that logs the epoch each train() starts from, and can kill its own worker after a checkpoint."""

    log = kill_after = marker = None

    def train(self):
        if self.log is not None:
            with open(self.log, "a") as fh:
                fh.write(f"{self.epoch}\n")
        # The diverging config's overflow warnings would be errors in pytest's process and ignored in a worker's.
        with np.errstate(all="ignore"):
            super().train()

    def save_checkpoint(self, path):
        super().save_checkpoint(path)
        if (
            self.kill_after is not None
            and self.epoch >= self.kill_after
            and (self.marker is None or not os.path.exists(self.marker))
        ):
            if self.marker is not None:
                open(self.marker, "w").close()  # only the first attempt dies
            os.kill(os.getpid(), signal.SIGKILL)


def make_solver(config, data, *, log_dir=None, kill=None, always=False):
    """A tiny 3-layer net; with ``kill={"lr": x}`` the trial of that learning rate kills its worker after the
    checkpoint of epoch 1 (on its first attempt; with ``always``, every attempt dies at its first checkpoint)."""
    if config["weight_scale"] == "fail":
        raise RuntimeError("this config fails on purpose")
    model = FullyConnectedNet([16, 16], input_dim=64, weight_scale=config["weight_scale"], dtype="float64")
    solver = LoggedSolver(
        model,
        data,
        update_rule="sgd",
        optim_config={"learning_rate": config["lr"]},
        num_epochs=EPOCHS,
        batch_size=25,
        num_train_samples=100,
        verbose=False,
    )
    tag = f"ws{config['weight_scale']}_lr{config['lr']}"
    if log_dir is not None:
        solver.log = os.path.join(log_dir, f"{tag}.log")
    if kill is not None and config["lr"] == kill["lr"] and config["weight_scale"] == kill["weight_scale"]:
        solver.kill_after = 1
        solver.marker = None if always else os.path.join(log_dir, f"{tag}.killed")
    return solver


def _cluster(n):
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster, set_as_default=False)
    return cluster, client


@pytest.fixture(scope="module")
def client2():
    cluster, client = _cluster(2)
    with cluster, client:
        yield client


@pytest.fixture(scope="module")
def client1():
    cluster, client = _cluster(1)
    with cluster, client:
        yield client


@pytest.fixture(scope="module")
def reference(data):
    return sweep(make_solver, CONFIGS, data=data, seed=7, client="sequential")


def _same(records, expected):
    """Records equal except where and how long they ran."""
    assert len(records) == len(expected)
    for r, e in zip(records, expected, strict=True):
        drop = ("seconds", "worker")
        # As JSON text: NaN losses of a diverged trial compare equal there.
        same = [json.dumps({k: v for k, v in x.items() if k not in drop}, sort_keys=True) for x in (r, e)]
        assert same[0] == same[1], (r["config"], r["error"], e["error"])


def test_grid_is_product_order_with_plain_values():
    configs = grid(lr=np.array([1e-3, 1e-2]), norm=[None, "batchnorm"])
    assert configs == [
        {"lr": 1e-3, "norm": None},
        {"lr": 1e-3, "norm": "batchnorm"},
        {"lr": 1e-2, "norm": None},
        {"lr": 1e-2, "norm": "batchnorm"},
    ]
    assert type(configs[0]["lr"]) is float and list(configs[0]) == ["lr", "norm"]
    with pytest.raises(ValueError, match="grid: lr has no values"):
        grid(lr=[])
    with pytest.raises(TypeError, match="grid: norm must be a list"):
        grid(norm="batchnorm")


def test_bad_arguments_are_refused_before_anything_runs(data):
    with pytest.raises(ValueError, match=r"data is missing \['y_val'\]"):
        sweep(make_solver, CONFIGS, data={k: v for k, v in data.items() if k != "y_val"}, client="sequential")
    with pytest.raises(ValueError, match="configs is empty"):
        sweep(make_solver, [], data=data, client="sequential")
    with pytest.raises(ValueError, match="gpus .* needs client=None, got 'sequential'"):
        sweep(make_solver, CONFIGS, data=data, client="sequential", gpus=[0])
    with pytest.raises(ValueError, match="seed must be an int in"):
        sweep(make_solver, CONFIGS, data=data, client="sequential", seed=-1)


def test_errors_and_divergence_are_reported_and_the_rest_completes(reference):
    assert [r["status"] for r in reference] == ["ok"] * 4 + ["diverged", "error"]
    diverged, failed = reference[4], reference[5]
    assert diverged["error"].startswith("NonFiniteLossError: loss is ") and " at iteration " in diverged["error"]
    assert not np.isfinite(diverged["loss_history"][-1])
    assert failed["error"] == "RuntimeError: this config fails on purpose" and failed["best_val_acc"] is None
    for r in reference[:4]:
        assert r["error"] is None and len(r["val_acc_history"]) == EPOCHS + 1 and r["worker"] == "sequential"
        assert len(r["loss_history"]) == EPOCHS * 4 and r["config"] == CONFIGS[r["index"]]


def test_records_do_not_depend_on_the_cluster(data, reference, client1, client2):
    state = np.random.get_state()
    again = sweep(make_solver, CONFIGS, data=data, seed=7, client="sequential")
    assert np.random.get_state()[1].tolist() == state[1].tolist(), "the caller's global random state changed"
    _same(again, reference)
    _same(sweep(make_solver, CONFIGS, data=data, seed=7, client=client1, checkpoint_dir=False), reference)
    two = sweep(make_solver, CONFIGS, data=data, seed=7, client=client2.scheduler.address)  # an address
    _same(two, reference)
    assert {r["worker"] for r in two} <= set(client2.scheduler_info()["workers"])
    other = sweep(make_solver, CONFIGS[:1], data=data, seed=8, client="sequential")
    assert other[0]["loss_history"] != reference[0]["loss_history"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_worker_resumes_its_trial_from_the_checkpoint(workers, data, reference, client1, client2, tmp_path):
    client = client1 if workers == 1 else client2
    # Trial 1 kills its worker after its epoch-1 checkpoint; on a one-worker cluster that worker also held the
    # data, which the scheduler must recompute.
    killer = functools.partial(make_solver, log_dir=str(tmp_path), kill=CONFIGS[1])
    results = sweep(killer, CONFIGS[:3], data=data, seed=7, client=client, checkpoint_dir=tmp_path / "ckpt")
    _same(results, reference[:3])
    assert (tmp_path / "ws0.01_lr0.01.killed").exists()
    starts = (tmp_path / "ws0.01_lr0.01.log").read_text().split()
    assert starts == ["0", "1"], f"the killed trial should restart once, from epoch 1: {starts}"
    for config in (CONFIGS[0], CONFIGS[2]):  # a finished trial is never trained again from scratch
        starts = (tmp_path / f"ws{config['weight_scale']}_lr{config['lr']}.log").read_text().split()
        assert starts[0] == "0" and all(s == str(EPOCHS) for s in starts[1:]), starts


def test_a_trial_whose_worker_keeps_dying_is_an_error_after_retries(data, reference, client2, tmp_path):
    killer = functools.partial(make_solver, log_dir=str(tmp_path), kill=CONFIGS[0], always=True)
    results = sweep(killer, CONFIGS[:2], data=data, seed=7, client=client2, retries=1)
    assert results[0]["status"] == "error"
    assert results[0]["error"].startswith(
        "KilledWorker: the worker process running this trial died 2 times (retries=1)"
    ), results[0]["error"]
    assert (tmp_path / "ws0.01_lr0.001.log").read_text().split() == ["0", "1"]  # the second attempt resumed too
    _same(results[1:], reference[1:2])


def missing_data():
    raise FileNotFoundError("no data here")


def test_a_data_loader_that_fails_makes_every_record_an_error(client2):
    results = sweep(make_solver, CONFIGS[:2], data=missing_data, client=client2)
    assert [(r["status"], r["error"]) for r in results] == [("error", "FileNotFoundError: no data here")] * 2


def test_save_load_best_table_and_plot(data, tmp_path):
    results = sweep(make_solver, CONFIGS, data=data, seed=7, client="sequential", keep_params=True)
    best = results.best()
    assert best is max(results[:5], key=lambda r: r["best_val_acc"])
    assert results.best(key=lambda r: -r["config"]["lr"])["config"]["lr"] == 1e-3
    assert set(best["best_params"]) == {"W1", "b1", "W2", "b2", "W3", "b3"}

    results.save(tmp_path / "sweep.json")
    loaded = SweepResults.load(tmp_path / "sweep.json")
    assert json.loads((tmp_path / "sweep.json").read_text())["format"] == "xpnet.sweep"
    for a, b in zip(loaded, results, strict=True):
        params_a, params_b = a.pop("best_params"), dict(b)["best_params"]
        assert {k: v for k, v in b.items() if k != "best_params"}.keys() == a.keys()
        for key, value in a.items():
            np.testing.assert_equal(value, b[key])
        for name in params_b:
            np.testing.assert_array_equal(params_a[name], params_b[name])

    table = results.to_pandas()
    assert list(table.columns[:3]) == ["weight_scale", "lr", "status"] and len(table) == len(CONFIGS)
    assert table["best_val_acc"].iloc[0] == results[0]["best_val_acc"]
    path = results.plot(x="lr", hue="weight_scale", path=tmp_path / "plots" / "lr.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'momentum' is not a config key"):
        results.plot(x="momentum")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a sweep results file"):
        SweepResults.load(tmp_path / "bad.json")


def test_plot_draws_one_sorted_line_per_hue_through_vis_utils_plot_sweep():
    # Records as a sweep returns them (no Dask needed): a failed trial is left out, points are sorted by x.
    def record(i, lr, ws, acc, status="ok"):
        return {"index": i, "config": {"lr": lr, "ws": ws}, "status": status, "best_val_acc": acc}

    results = SweepResults(
        [record(0, 1e-1, 1, 0.5), record(1, 1e-3, 1, 0.7), record(2, 1e-3, 2, 0.6), record(3, 1e-2, 2, None, "error")]
    )
    fig = results.plot(x="lr", hue="ws", title="t")
    (ax,) = fig.axes
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert drawn == {"ws=1": ([1e-3, 1e-1], [0.7, 0.5]), "ws=2": ([1e-3], [0.6])}
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr" and ax.get_ylabel() == "best_val_acc"
    assert vis_utils.plot_sweep({None: [(1, 2.0), (3, 1.0)]}, xlabel="a", ylabel="b").axes[0].get_xscale() == "linear"
    with pytest.raises(TypeError, match=r"lines must be a dict \{label: \[\(x, y\), ...\]\}, got list"):
        vis_utils.plot_sweep([(1, 2.0)], xlabel="a", ylabel="b")
    with pytest.raises(TypeError, match=r"lines\['a'\] must hold \(x, y\) pairs with a real number y, got \(1, 'x'\)"):
        vis_utils.plot_sweep({"a": [(1, "x")]}, xlabel="a", ylabel="b")
    with pytest.raises(TypeError, match="logx must be True, False or None"):
        vis_utils.plot_sweep({}, xlabel="a", ylabel="b", logx="yes")


def env_of_trial(config, data):
    """Reports the GPU pinning its worker process got, through the record's error message."""
    import time

    time.sleep(0.2)  # long enough that both workers take trials
    raise RuntimeError(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")


def test_each_gpu_worker_sees_only_its_gpu(data, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # gpus="all" takes the visible ones; no GPU needed here
    results = sweep(env_of_trial, grid(i=range(6)), data=data, gpus="all", retries=0)
    seen = {}
    for r in results:
        seen.setdefault(r["worker"], set()).add(r["error"])
    assert sorted(e for errors in seen.values() for e in errors) == [
        "RuntimeError: CUDA_VISIBLE_DEVICES=3",
        "RuntimeError: CUDA_VISIBLE_DEVICES=5",
    ]
    assert all(len(errors) == 1 for errors in seen.values()), seen  # one GPU per worker, for all its trials


def test_without_dask_only_sequential_runs(tmp_path):
    script = (
        "import sys; sys.modules['distributed'] = None\n"
        "from xpnet.sweep import sweep\n"
        "import numpy as np\n"
        "def make(config, data): raise ValueError('no')\n"
        "x, y = np.zeros((2, 3)), np.zeros(2, int)\n"
        "data = dict(X_train=x, y_train=y, X_val=x, y_val=y)\n"
        "print(sweep(make, [{}], data=data, client='sequential')[0]['error'])\n"
        "try:\n"
        "    sweep(make, [{}], data=data)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ValueError: no",
        "client=None needs Dask distributed, which is not installed; install it with: "
        "pip install \"xpnet[distributed]\" (client='sequential' runs without it)",
    ]


# Reliability (issue 17): sweep arguments refused by name, hostile results files, one sweep per checkpoint folder,
# no wait for ever on a cluster without workers.


def _results_doc(**record_changes):
    record = {
        "index": 0,
        "config": {"lr": 0.001},
        "status": "ok",
        "error": None,
        "best_val_acc": 0.5,
        "loss_history": [2.3, float("nan")],
        "train_acc_history": [0.1],
        "val_acc_history": [0.2],
        "seconds": 1.5,
        "worker": "sequential",
        **record_changes,
    }
    return {"format": "xpnet.sweep", "version": 1, "params_file": None, "records": [record]}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x80\x04\x95pickle", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ({"params_file": 5}, "'params_file' must be null or a file name, got int 5"),
        ({"params_file": "../outside.params.npz"}, r"'params_file' must be the name of a .npz file .* \(no path\)"),
        ({"params_file": "/tmp/outside.params.npz"}, r"'params_file' must be the name .* \(no path\)"),
        ({"config": "lr=0.1"}, r"records\[0\].config must be a JSON object .*, got str"),
        (
            {"status": "great"},
            r"records\[0\].status must be one of \['ok', 'stopped', 'diverged', 'error'\], got str 'great'",
        ),
        ({"loss_history": "2.3"}, r"records\[0\].loss_history must be a list of numbers, got str"),
        ({"loss_history": [1, True]}, r"records\[0\].loss_history must be a list of numbers"),
        ({"index": -1}, r"records\[0\].index must be an int >= 0"),
        ({"best_params": ["W1"]}, r"records\[0\].best_params names arrays but 'params_file' is null"),
        ({"extra_top": 1}, r"unknown top-level keys \['extra_top'\]"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_a_hostile_results_file_is_refused_naming_file_and_field(content, match, tmp_path):
    path = tmp_path / "sweep.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        doc = _results_doc()
        if set(content) & {"params_file", "extra_top"}:
            doc.update(content)
        else:
            doc = _results_doc(**content)
        (tmp_path / "outside.params.npz").write_bytes(b"")  # would be followed, if anything were
        path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match) as info:
        SweepResults.load(path)
    assert str(path) in str(info.value)


def test_a_params_file_linked_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "secret.npz").write_bytes(b"")
    os.symlink(tmp_path / "secret.npz", tmp_path / "inside" / "s.params.npz")
    doc = {**_results_doc(best_params=["W1"]), "params_file": "s.params.npz"}
    (tmp_path / "inside" / "s.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="leads out of the folder"):
        SweepResults.load(tmp_path / "inside" / "s.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_place_of_the_results_file_is_refused_at_once(tmp_path):
    path = tmp_path / "sweep.json"
    os.mkfifo(path)

    def unblock():  # bounds the test on code that would open the FIFO and wait for a writer for ever
        time.sleep(5)
        with contextlib.suppress(OSError):  # ENXIO: nobody is reading, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()
    begin = time.monotonic()
    with pytest.raises(ValueError, match="is not a regular file"):
        SweepResults.load(path)
    assert time.monotonic() - begin < 2


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_fields = ["format", "version", "params_file", "records", *_results_doc()["records"][0], "best_params"]


@given(field=st.sampled_from(_fields), value=_json, whole=st.booleans())
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_random_json_in_a_results_file_loads_or_is_a_value_error_naming_it(field, value, whole):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "r.json")
        doc = _results_doc()
        if whole:
            doc = value
        elif field in doc:
            doc[field] = value
        else:
            doc["records"][0][field] = value
        with open(path, "w") as fh:
            json.dump(doc, fh)
        try:
            loaded = SweepResults.load(path)
        except ValueError as err:
            assert path in str(err)
            return
        for r in loaded:  # what loads is what the rest of SweepResults can use
            assert r["status"] in ("ok", "diverged", "error") and isinstance(r["config"], dict)
            assert all(isinstance(v, (int, float)) for v in r["loss_history"])
        repr(loaded)
        loaded.to_pandas()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"checkpoint_dir": 5}, TypeError, "checkpoint_dir must be a folder .* got 5 of type int"),
        ({"checkpoint_dir": True}, TypeError, "checkpoint_dir must be a folder .* got True of type bool"),
        ({"configs": [{"lr": 1, 2: 3}]}, TypeError, r"configs\[0\] keys must be str .* got 2 of type int"),
        ({"configs": [{}, {("lr", 1): 3}]}, TypeError, r"configs\[1\] keys must be str .* got \('lr', 1\)"),
        ({"gpus": [None]}, TypeError, r"gpus\[0\] must be a GPU index .* got None"),
        ({"gpus": [0, 1.5]}, TypeError, r"gpus\[1\] must be a GPU index .* got 1.5"),
        ({"gpus": [True]}, TypeError, r"gpus\[0\] must be a GPU index .* got True"),
        ({"gpus": [-1]}, ValueError, r"gpus\[0\] must be a GPU index >= 0, got -1"),
        ({"timeout": 0}, ValueError, "timeout must be a finite number of seconds > 0"),
        ({"no_workers_timeout": "1m"}, TypeError, "no_workers_timeout must be a number of seconds"),
        (
            {"make_solver": functools.partial(make_solver, log_dir=threading.Lock())},
            TypeError,
            "make_solver must be picklable.*lock",
        ),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_sweep_arguments_are_refused_by_name_before_any_work(kwargs, error, match, data, tmp_path, monkeypatch):
    # A LocalCluster started anyway would show as a worker process; refusing comes first, so none starts.
    started = []
    monkeypatch.setattr(distributed, "LocalCluster", lambda *a, **k: started.append(1) or pytest.fail("started"))
    args = {"make_solver": make_solver, "configs": CONFIGS[:1], "data": data, **kwargs}
    with pytest.raises(error, match=match):
        sweep(args.pop("make_solver"), args.pop("configs"), **args)
    assert not started and not list(tmp_path.iterdir())


HOLDER = """
import json, os, sys, time
from xpnet import vis_utils
from xpnet.classifiers import FullyConnectedNet
from xpnet.data_utils import get_digits_data
from xpnet.solver import Solver
from xpnet.sweep import sweep

folder = sys.argv[1]

def make(config, data):
    open(os.path.join(folder, "started"), "w").close()
    for _ in range(600):  # at most 60 s: until the test has tried its second sweep
        if os.path.exists(os.path.join(folder, "release")):
            break
        time.sleep(0.1)
    model = FullyConnectedNet([8], input_dim=64, weight_scale=config["ws"])
    return Solver(model, data, num_epochs=1, batch_size=25, num_train_samples=50, verbose=False)

d = get_digits_data()
data = {k: d[k][:50] for k in ("X_train", "y_train", "X_val", "y_val")}
results = sweep(make, [{"ws": 1e-2}, {"ws": 1e-1}], data=data, client="sequential",
                checkpoint_dir=os.path.join(folder, "ckpt"), retries=0)
print(json.dumps([[r["status"], r["error"]] for r in results]))
"""


def test_a_second_sweep_in_a_checkpoint_folder_in_use_is_refused(data, tmp_path):
    # Two real processes: the first holds the folder while its first trial waits for the test's go.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(600):
            if (tmp_path / "started").exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert (tmp_path / "started").exists(), holder.communicate(timeout=60)
        with pytest.raises(ValueError, match=r"checkpoint_dir '.*ckpt' is in use by another sweep \(pid \d+ on"):
            sweep(make_solver, CONFIGS[:2], data=data, client="sequential", checkpoint_dir=tmp_path / "ckpt")
        (tmp_path / "release").touch()
        out, err = holder.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert holder.returncode == 0, err
    assert json.loads(out) == [["ok", None], ["ok", None]]  # the first sweep is not disturbed
    # Once it has finished the folder is free again (the lock goes with its process).
    again = sweep(make_solver, CONFIGS[:1], data=data, seed=7, client="sequential", checkpoint_dir=tmp_path / "ckpt")
    assert again[0]["status"] == "ok"


def test_retries_are_counted_per_sweep_run(data, reference, tmp_path):
    from xpnet.sweep._run import _trial_name

    # Attempt counters that other, interrupted sweeps left behind are not this run's worker deaths.
    name = _trial_name(CONFIGS[0], 0, 7)
    (tmp_path / f"{name}.attempts").write_text("1")
    (tmp_path / f"{name}.attempts-0123456789ab").write_text("5")
    results = sweep(
        make_solver, CONFIGS[:1], data=data, seed=7, client="sequential", checkpoint_dir=tmp_path, retries=0
    )
    _same(results, reference[:1])
    assert not list(tmp_path.glob("*.attempts*"))


def wait_for_release(config, data, *, folder):
    """Stands for a long trial: marks that it started, then waits (at most 30 s) for the test to release it."""
    open(os.path.join(folder, f"started-{config['i']}"), "w").close()
    for _ in range(300):
        if os.path.exists(os.path.join(folder, "release")):
            break
        time.sleep(0.1)
    raise RuntimeError("released")


def _bounded(function, seconds):
    """``function()``'s result, or a test failure if it has not returned after ``seconds`` (no hang)."""
    out: list = []

    def call():
        try:
            out.append((True, function()))
        except BaseException as err:  # raised again in the test's thread
            out.append((False, err))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    returned, value = out[0]
    if not returned:
        raise value
    return value


def test_a_sweep_on_a_cluster_that_lost_its_workers_or_ran_past_its_timeout_ends(data, tmp_path):
    cluster, client = _cluster(2)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with cluster, client:
        begin = time.monotonic()
        trial = functools.partial(wait_for_release, folder=str(first))
        results = _bounded(lambda: sweep(trial, grid(i=range(3)), data=data, client=client, timeout=1), 30)
        assert time.monotonic() - begin < 10
        assert [r["status"] for r in results] == ["error"] * 3
        assert {r["error"] for r in results} == {
            "TimeoutError: the sweep ran past timeout=1 s before this trial finished"
        }
        # Dask cannot stop a running task: the timed-out ones end when released. The release stays, so one that
        # starts late (a cancel still on its way) ends at once instead of holding a worker the next sweep needs.
        (first / "release").touch()

        def stop_workers_once_a_trial_runs():
            for _ in range(300):  # whichever trial Dask starts first: its order among 10..13 is not fixed
                if any((second / f"started-{i}").exists() for i in range(10, 14)):
                    break
                time.sleep(0.1)
            for nanny in list(cluster.workers.values()):  # both workers killed, their nannies closing with them
                nanny.close_gracefully(reason="test: no restart")
                os.kill(nanny.pid, signal.SIGKILL)

        stopper = threading.Thread(target=stop_workers_once_a_trial_runs, daemon=True)
        stopper.start()
        begin = time.monotonic()
        configs = grid(i=range(10, 14))
        trial = functools.partial(wait_for_release, folder=str(second))
        results = _bounded(lambda: sweep(trial, configs, data=data, client=client, no_workers_timeout=2), 60)
        stopper.join(30)
        assert [r["status"] for r in results] == ["error"] * 4
        no_workers = [r for r in results if "the cluster has had no workers for" in r["error"]]
        assert len(no_workers) == 4, [r["error"] for r in results]
        assert all("(no_workers_timeout=2)" in r["error"] for r in no_workers)
        assert time.monotonic() - begin < 30
