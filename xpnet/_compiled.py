"""One compiled training step for ``Solver(compile=True)``: loss, gradients, every param's update and the model's
state (batchnorm running statistics) in one function, compiled by ``torch.compile`` on torch tensors and by
``jax.jit`` on JAX arrays.

The step is a pure function of its inputs: params, optimizer state, model state, the minibatch and the dropout
masks go in, the loss and the new params and states come out. What would be a constant of the trace is made an
input instead: the dropout masks are drawn on the host before the call, from the same NumPy state and in the same
order as an eager step draws them (so the numbers are eager's), and the hyperparameters and Adam's step count go in
as 0-d arrays (so a learning-rate decay or the next step does not retrace). The Solver's own book-keeping (its
Python-number hyperparameters, checkpoints, resume) is unchanged: only the arrays come back from the trace.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import optim
from ._backend import backend_name, device, index_dtype, is_array, max_float_dtype, namespace

__all__ = ["CompiledStep", "COMPILERS"]

COMPILERS = {"torch": "torch.compile", "jax": "jax.jit"}
"""Backend name -> the compiler ``Solver(compile=True)`` uses on it; other backends have none."""

TORCH_BACKEND = "inductor"
"""``torch.compile``'s backend. The tests set ``"aot_eager"`` (the same graph, no C++ compilation: seconds, not a
minute, on two cores)."""


def _rule_spec(update_rule: Callable) -> optim.RuleSpec | None:
    name = getattr(update_rule, "__name__", "")
    if isinstance(name, str) and name in optim.CONFIG_SPEC and getattr(optim, name) is update_rule:
        return optim.CONFIG_SPEC[name]
    return None


class CompiledStep:
    """``step(X, y, configs) -> (loss, configs)`` for a model and a built-in update rule, compiled once.

    Parameters
    ----------
    model : Model
        Its ``params`` and state are read before and written after each call.
    update_rule : callable
        One of :mod:`xpnet.optim`'s rules (a custom rule's Python-number config could not be threaded through
        the trace without knowing which numbers it changes).

    Raises
    ------
    ValueError
        When the model's backend has no compiler (NumPy, CuPy, array_api_strict), or the rule is not built in;
        the message names ``compile``.
    """

    def __init__(self, model, update_rule: Callable):
        self.xp = namespace(*model.params.values())
        backend = backend_name(self.xp)
        if backend not in COMPILERS:
            compilers = ", ".join(f"{b}: {c}" for b, c in COMPILERS.items())
            raise ValueError(
                f"compile=True needs a backend with a compiler ({compilers}), got the model on {backend}; "
                "use compile=False"
            )
        spec = _rule_spec(update_rule)
        if spec is None:
            raise ValueError(
                f"compile=True needs one of xpnet.optim's update rules {list(optim.CONFIG_SPEC)}, got "
                f"{getattr(update_rule, '__name__', update_rule)!r}; use compile=False for a custom rule"
            )
        self.model, self.update_rule, self.spec, self.backend = model, update_rule, spec, backend
        # The 0-d arrays the last step passed for Python-number hyperparameters, by (kind, type, repr, device): a
        # step reuses them while the numbers stay the same, rather than making (on a GPU: copying to the device)
        # one per number per param per step. Only the last step's are kept, so Adam's rising t leaves no trail.
        self._scalars: dict = {}
        if backend == "torch":
            import torch

            self._compiled = torch.compile(self._pure, fullgraph=True, dynamic=False, backend=TORCH_BACKEND)
        else:
            import jax

            self._compiled = jax.jit(self._pure)

    def _pure(self, params: dict, configs: dict, state: dict, X, y, masks):
        """The traced step: arrays in, arrays out; the model's attributes are restored before it returns."""
        model = self.model
        saved = model.params
        model.params = params
        try:
            model.set_state(state)
            loss, grads = model.loss(X, y) if masks is None else model.loss(X, y, dropout_masks=masks)
            new_params, new_configs = {}, {}
            for p, w in params.items():
                new_params[p], new_configs[p] = self.update_rule(w, grads[p], dict(configs[p]))
            new_state = model.get_state()
        finally:
            model.params = saved
        return loss, new_params, new_configs, new_state

    def _traced_config(self, config: dict, w, scalars: dict) -> dict:
        """``config`` with its missing state arrays as zeros and, on torch, its Python numbers as 0-d tensors on
        w's device (hyperparameters in the widest float, which a 0-d tensor never promotes w to; counts as
        integers), so that the trace takes them as inputs. jax.jit traces Python numbers by itself, weakly typed
        as the Python numbers of an eager step are (a float64 array would promote a float32 w). The 0-d tensors
        made go into ``scalars``, and those of the last step are reused."""
        out = {}
        for key in self.spec.arrays:
            if config.get(key) is None:
                # Zeros, as the rule starts a missing state: the first step then traces what every later one runs.
                config = {**config, key: self.xp.zeros_like(w)}
        for key, value in config.items():
            if is_array(value) or value is None or self.backend == "jax":
                out[key] = value
                continue
            count = key in self.spec.counts
            # repr, not the value: -0.0 == 0.0, and 1 == 1.0 == True, but they are different hyperparameters.
            cache_key = (count, type(value), repr(value), device(w))
            scalar = scalars.get(cache_key, self._scalars.get(cache_key))
            if scalar is None:
                dtype = index_dtype(self.xp) if count else max_float_dtype(self.xp, device(w))
                scalar = self.xp.asarray(value, dtype=dtype, device=device(w))
            out[key] = scalars[cache_key] = scalar
        return out

    def __call__(self, X, y, configs: dict[str, dict]) -> tuple[Any, dict[str, dict]]:
        """One step on the minibatch ``(X, y)``: updates ``model.params`` and the model state, returns the loss (a
        0-d array) and the new optimizer configs (the caller's ``configs`` are not changed)."""
        model = self.model
        draw = getattr(model, "draw_dropout_masks", None)
        masks = draw(X.shape[0]) if draw is not None else None
        params = dict(model.params)
        full = {}
        for p, config in configs.items():
            full[p] = {**self.spec.defaults(), **config}
            for key in self.spec.counts:
                full[p].setdefault(key, 0)  # as adam's config.setdefault("t", 0)
        scalars: dict = {}
        traced = {p: self._traced_config(full[p], params[p], scalars) for p in params}
        state = model._state_arrays()  # not copies: the trace reads them and returns new ones
        missing = {name: shape for name, shape in model.state_shapes().items() if name not in state}
        if missing:
            # Missing running statistics are zeros to the layers too; written into the model now (not inside the
            # trace, whose guards would see the layer dicts grow), so that the first step traces what all run.
            ref = next(iter(params.values()))
            state.update({n: self.xp.zeros(s, dtype=ref.dtype, device=device(ref)) for n, s in missing.items()})
            model.set_state(state)
        with warnings.catch_warnings():
            # torch.compile notes that it traces through array-api-compat's functools.lru_cache lookups (of types,
            # which are the same at every step): a warning per lookup on the first step, nothing the user can act on.
            warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
            loss, new_params, new_configs, new_state = self._compiled(params, traced, state, X, y, masks)
        self._scalars = scalars
        model.params.update(new_params)
        model._adopt_state(new_state)
        out = {}
        for p, config in full.items():
            # Hyperparameters stay the caller's Python numbers; each step count advances by one, as the rule's does;
            # only the arrays (moments, velocity, cache) come from the trace.
            out[p] = {**config, **{k: config[k] + 1 for k in self.spec.counts}}
            out[p].update({k: new_configs[p][k] for k in self.spec.arrays})
        return loss, out
