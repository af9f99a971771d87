"""An update whose loss or weights turn NaN or infinite is undone, not trained on.

One non-finite value (an extreme price, a reward that overflows, an unlucky step) spreads
through the gradients to every weight in one optimizer step; the next rollout then crashes,
or worse, the run goes on saving NaN checkpoints that every later run resumes from. So the
weights and the optimizer state are copied before each update (a few copies per update, not
per minibatch: the cost is one clone of the network, three times), and checked once after
it. A bad update is put back in place (the same tensors, so a state captured at the rollout
boundary, which holds them, is good again) and :class:`NonFiniteUpdate` stops the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from perfmode.errors import PerfmodeError


class NonFiniteUpdate(PerfmodeError):
    """An update gave a NaN or infinite loss or weights; it was undone."""


@dataclass
class Snapshot:
    params: list[torch.Tensor]
    state: list[dict[str, Any] | None]
    n_updates: int


def snapshot(model: Any) -> Snapshot:
    opt = model.policy.optimizer
    params = [p for g in opt.param_groups for p in g["params"]]
    with torch.no_grad():
        return Snapshot(
            params=[p.detach().clone() for p in params],
            state=[_copy(opt.state[p]) if p in opt.state else None for p in params],
            n_updates=model._n_updates,
        )


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def problem(model: Any) -> str | None:
    """What is not finite after the update just made: its loss, a weight, or Adam's state."""
    loss = model.logger.name_to_value.get("train/loss")
    if loss is not None and not math.isfinite(float(loss)):
        return f"its loss is {float(loss)}"
    opt = model.policy.optimizer
    params = [p for g in opt.param_groups for p in g["params"]]
    tensors = params + [
        v for p in params for v in opt.state.get(p, {}).values() if isinstance(v, torch.Tensor)
    ]
    # One reduction per tensor, one sync for all: a sum is NaN or infinite if any value is.
    with torch.no_grad():
        sums = torch.stack([t.detach().float().sum() for t in tensors])
    if bool(torch.isfinite(sums).all()):
        return None
    for name, p in model.policy.named_parameters():
        if not bool(torch.isfinite(p).all()):
            return f"weight {name} holds NaN or infinity"
    return "the optimizer state holds NaN or infinity"


def undo(model: Any, saved: Snapshot) -> None:
    """Put the weights and the optimizer state back, in place, as they were before."""
    opt = model.policy.optimizer
    params = [p for g in opt.param_groups for p in g["params"]]
    with torch.no_grad():
        for p, before, state in zip(params, saved.params, saved.state, strict=True):
            p.copy_(before)
            if state is None:
                opt.state.pop(p, None)
                continue
            live = opt.state[p]
            for k, v in state.items():
                if isinstance(v, torch.Tensor) and isinstance(live.get(k), torch.Tensor):
                    live[k].copy_(v)
                else:
                    live[k] = v
    model._n_updates = saved.n_updates
