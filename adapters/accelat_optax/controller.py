"""``Controller``: drive an optax optimizer's learning rate (and momentum) from the host.

For a metric-driven policy (AccelAT): the policy decides, once per evaluation, and the
controller writes its values into the ``hyperparams`` of the optimizer's
``optax.inject_hyperparams`` state, which the (jitted) update reads at every step. A value
replaced there has the same shape and dtype, so a jitted update does not recompile.

>>> import optax
>>> from accelat_core import AccelAT
>>> optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
>>> controller = Controller(AccelAT(0.1, 1e-3, min_gain=0.01, factor=0.5, window=2))
>>> opt_state = controller.apply(optimizer.init({"w": jnp.zeros(3)}))
>>> for val_acc in [0.5, 0.6, 0.6, 0.6]:  # once per evaluation, after that epoch's updates
...     opt_state = controller.step(opt_state, val_acc)
>>> float(opt_state.hyperparams["learning_rate"])
0.05000000074505806
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from accelat_core import Hyper, Policy

#: Version of :meth:`Controller.state_dict`'s layout (1: 0.2's, without the update counts).
STATE_FORMAT = 2
#: The hyperparameter names a momentum is written to: SGD's, then the Adam family's.
MOMENTUM_NAMES = ("momentum", "b1")
_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


class Controller:
    """Write ``policy``'s lr (and momentum) into an ``inject_hyperparams`` optimizer state.

    ``opt_state = controller.step(opt_state, metric)`` advances the policy one unit
    (``policy.step(metric)``; once per evaluation for AccelAT) and returns ``opt_state``
    with ``hyperparams["learning_rate"] = lr`` and, when the policy emits a momentum,
    ``hyperparams["momentum"]`` (``optax.sgd``) or ``hyperparams["b1"]`` (Adam family)
    replaced; nothing else changes. ``apply(opt_state)`` writes the current values
    without stepping (at the start of training). The state may be the
    ``InjectStatefulHyperparamsState`` itself or hold exactly one inside a larger tree
    (``optax.chain``, ``optax.MultiSteps``).

    Build the optimizer with plain numbers for the driven hyperparameters
    (``inject_hyperparams(optax.adam)(learning_rate=1e-3)``): ``inject_hyperparams``
    recomputes a schedule-valued one at every update, which would overwrite the write.
    Errors name what the state holds and what to build instead.

    **Within an evaluation**: ``opt_state = controller.step_update(opt_state)`` after every
    update follows a policy whose lr moves between evaluations (AccelAT's final anneal,
    ``anneal=``) update by update: it writes ``policy.between(update, updates)``, counting the
    updates since the last ``step`` and those of the last whole interval between two.

    The controller's state is the policy's and the two update counts: ``state_dict()`` is
    JSON, and after ``load_state_dict`` the controller continues exactly (the restored
    ``opt_state`` already holds the values; ``apply`` writes them again if it does not).

    Args:
        policy: any ``accelat_core`` policy; it decides every value. A fixed shape works
            too (``step(opt_state)``), though :func:`accelat_optax.schedule` evaluates it
            inside the jitted update for free.

    >>> from accelat_core import Plateau
    >>> controller = Controller(Plateau(0.1, factor=0.5, patience=0))
    >>> opt_state = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1).init(jnp.zeros(2))
    >>> for loss in [1.0, 1.0]:  # once per evaluation
    ...     opt_state = controller.step(opt_state, loss)
    >>> round(float(opt_state.hyperparams["learning_rate"]), 6), controller.lr
    (0.05, 0.05)
    """

    def __init__(self, policy: Policy) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(
                f"policy must be an accelat_core Policy, got {policy!r} ({type(policy).__name__})"
            )
        self.policy = policy
        self.updates = 0  # updates since the last step
        self.updates_per_evaluation = 0  # those of the last whole interval (0: none yet)
        self._written = policy.hyper

    # -- the loop -----------------------------------------------------------------------
    def step(self, opt_state: optax.OptState, metric: Any = None) -> optax.OptState:
        """Advance the policy (with ``metric``, a float or 0-d array) and write its values."""
        if metric is None:
            if self.policy.needs_metric:
                raise ValueError(
                    f"{self.policy.policy_name} is metric-driven: call "
                    "controller.step(opt_state, metric) with the monitored value (e.g. "
                    "validation accuracy) once per evaluation"
                )
            hyper = self.policy.step()
        else:
            hyper = self.policy.step(float(metric) if self.policy.needs_metric else None)
        if self.updates:
            self.updates_per_evaluation = self.updates
        self.updates = 0
        return self._write(opt_state, hyper)

    def step_update(self, opt_state: optax.OptState) -> optax.OptState:
        """One update was made: ``opt_state`` with the policy's value within the evaluation
        written (unchanged while that value holds)."""
        self.updates += 1
        if not self.updates_per_evaluation:
            return opt_state
        hyper = self.policy.between(self.updates, self.updates_per_evaluation)
        return opt_state if hyper == self._written else self._write(opt_state, hyper)

    def _write(self, opt_state: optax.OptState, hyper: Hyper) -> optax.OptState:
        written = _write(opt_state, hyper, self.policy)
        self._written = hyper
        return written

    def apply(self, opt_state: optax.OptState) -> optax.OptState:
        """``opt_state`` with the policy's current values written, without stepping it."""
        if self.updates and self.updates_per_evaluation:
            return self._write(
                opt_state, self.policy.between(self.updates, self.updates_per_evaluation)
            )
        return self._write(opt_state, self.policy.hyper)

    @property
    def lr(self) -> float:
        return self.policy.lr

    @property
    def momentum(self) -> float | None:
        return self.policy.momentum

    @property
    def should_stop(self) -> bool:
        """The policy's verdict that training cannot improve further (AccelAT)."""
        return self.policy.should_stop

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"format": 2, "policy": policy.state_dict(), "updates", "updates_per_evaluation"}``:
        plain JSON."""
        counts = {"updates": self.updates, "updates_per_evaluation": self.updates_per_evaluation}
        return {"format": STATE_FORMAT, "policy": self.policy.state_dict(), **counts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (format 1, without the counts, too); ``ValueError`` for
        another layout or policy, with the controller left as it was."""
        keys = {
            1: {"format", "policy"},
            2: {"format", "policy", "updates", "updates_per_evaluation"},
        }
        fmt = state_dict.get("format") if isinstance(state_dict, dict) else None
        if type(fmt) is not int or fmt not in keys:
            raise ValueError(
                f"state_dict format must be 1 or {STATE_FORMAT}, got {fmt!r} in {state_dict!r:.200}"
            )
        if set(state_dict) != keys[fmt]:
            names = ", ".join(sorted(keys[fmt]))
            raise ValueError(
                f"state_dict must be a Controller.state_dict() with keys {names}; "
                f"got {state_dict!r:.200}"
            )
        counts = [state_dict.get(k, 0) for k in ("updates", "updates_per_evaluation")]
        if any(type(c) is not int or c < 0 for c in counts):
            raise ValueError(f"state_dict's update counts must be integers >= 0, got {counts!r}")
        self.policy.load_state_dict(state_dict["policy"])
        self.updates, self.updates_per_evaluation = counts

    def __repr__(self) -> str:
        return f"Controller({self.policy!r})"


def _write(opt_state: optax.OptState, hyper: Hyper, policy: Policy) -> optax.OptState:
    """``opt_state`` with ``hyper`` written into its one injected-hyperparameters state."""
    found = [
        s for s in jax.tree_util.tree_leaves(opt_state, is_leaf=_is_injected) if _is_injected(s)
    ]
    if len(found) != 1:
        raise TypeError(_not_one_injected(opt_state, len(found)))
    names = {"learning_rate": hyper.lr}
    if hyper.momentum is not None:
        names[_momentum_name(found[0], policy)] = hyper.momentum
    for name in names:
        _check_writable(found[0], name)

    def replace(state: Any) -> Any:
        if not _is_injected(state):
            return state
        hyperparams = dict(state.hyperparams)
        for name, value in names.items():
            old = hyperparams[name]
            hyperparams[name] = jnp.asarray(value, dtype=jnp.result_type(old))
        return state._replace(hyperparams=hyperparams)

    return jax.tree_util.tree_map(replace, opt_state, is_leaf=_is_injected)


def _is_injected(node: Any) -> bool:
    return isinstance(node, _INJECTED)


def _momentum_name(state: Any, policy: Policy) -> str:
    for name in MOMENTUM_NAMES:
        if name in state.hyperparams:
            return name
    raise ValueError(
        f"{policy.policy_name} drives momentum, but the injected hyperparameters are "
        f"{sorted(state.hyperparams)}, with neither 'momentum' nor 'b1'. Inject one: "
        "optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9) or "
        "inject_hyperparams(optax.adam)(learning_rate=1e-3, b1=0.9); or use a policy "
        "without momentum (e.g. OneCycle(..., momentum=None))"
    )


def _check_writable(state: Any, name: str) -> None:
    if name not in state.hyperparams:
        raise ValueError(
            f"the injected hyperparameters are {sorted(state.hyperparams)}, without {name!r}: "
            f"the optimizer has no {name} to drive. Build it with a numeric {name} "
            f"(e.g. optax.inject_hyperparams(optax.sgd)({name}=0.1))"
        )
    if name in getattr(state, "hyperparams_states", {}):
        raise ValueError(
            f"{name!r} was injected as a schedule, which inject_hyperparams recomputes at "
            "every update, overwriting what the Controller writes: pass a number instead "
            f"(e.g. {name}=0.1) and let the policy decide every value"
        )


def _not_one_injected(opt_state: Any, count: int) -> str:
    if count > 1:
        return (
            f"opt_state holds {count} inject_hyperparams states, and the Controller drives "
            "exactly one: wrap the whole chain in one optax.inject_hyperparams, or give "
            "each its own Controller and opt_state part"
        )
    return (
        f"opt_state has no injected hyperparameters: found {_describe(opt_state)}. Build the "
        "optimizer with optax.inject_hyperparams, e.g. "
        "optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9), so that its "
        "learning rate lives in opt_state.hyperparams where the Controller can write it"
    )


def _describe(opt_state: Any) -> str:
    """The state's type, with its direct children's types for a tuple (optax.chain)."""
    name = type(opt_state).__name__
    if isinstance(opt_state, tuple) and not hasattr(opt_state, "_fields"):
        return f"{name}({', '.join(type(s).__name__ for s in opt_state)})"
    return name
