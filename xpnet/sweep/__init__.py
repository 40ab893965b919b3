"""Hyperparameter sweeps: one ``Solver`` per configuration, spread over a Dask cluster (a laptop's cores by default).

::

    from xpnet.sweep import grid, sweep

    configs = grid(weight_scale=np.logspace(-4, 0, 20), normalization=[None, "batchnorm"])

    def make_solver(config, data):            # runs on a worker; returns an untrained Solver
        model = FullyConnectedNet([100] * 5, weight_scale=config["weight_scale"],
                                  normalization=config["normalization"])
        return Solver(model, data, num_epochs=10, batch_size=50, update_rule="adam",
                      optim_config={"learning_rate": 1e-3}, verbose=False)

    results = sweep(make_solver, configs, data=small_data, seed=0)
    results.best(); results.to_pandas(); results.plot(x="weight_scale", hue="normalization", path="ws.png")
    results.save("sweep.json"); SweepResults.load("sweep.json")

    # successive halving: every config trains 1 epoch, the best third go on to 3, then 9, then 10 (num_epochs)
    halved = sweep(make_solver, configs, data=small_data, halving={"min_epochs": 1, "eta": 3})
    halved.plot_curves(path="curves.png")     # validation accuracy against epochs, one line per trial

Trials are reproducible (NumPy's global random state is seeded from ``(seed, i)`` before ``make_solver`` runs for
``configs[i]``), so the records do not depend on the cluster; they are fault tolerant (each trial checkpoints every
epoch and a trial whose worker dies resumes from its last checkpoint on another). With ``halving`` a promoted trial
continues from its checkpoint, so one that reaches the last rung has the record of a run without halving. Dask
distributed is the optional extra ``xpnet[distributed]``; ``client="sequential"`` needs none of it.
"""

from ._results import SweepResults
from ._run import grid, local_client, sweep

__all__ = ["grid", "sweep", "SweepResults", "local_client"]
