"""The PPO the trainer runs: :class:`LeanPPO` whose update survives a CUDA out-of-memory.

SB3 has no OOM handling; ``torch.OutOfMemoryError`` is raised mid-update. The retry and
what it changes (:class:`HalveBatchOnOom`) sit here, with the update they redo.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import torch

from perfmode.base.clock import utc_now
from perfmode.config.schema import Config
from perfmode.errors import PerfmodeError
from perfmode.governor.governor import Governor, fit_batch
from perfmode.status.model import OomEvent
from perfmode.training.fastppo import LeanPPO

log = logging.getLogger("perfmode.train")


class GovernedPPO(LeanPPO):
    """PPO whose update survives a CUDA OOM: ``oom_handler`` shrinks the batch, then retry.

    The saved zip is a plain PPO one (the handler is not saved).
    """

    oom_handler: Any = None

    def train(self) -> None:
        while True:
            try:
                return super().train()
            except torch.OutOfMemoryError:
                if self.oom_handler is None:
                    raise
                self.oom_handler()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "oom_handler"]


class HalveBatchOnOom:
    """CUDA OOM in an update: halve the batch (not below the base); the update is redone.

    ``on_event`` records the event (status.json); ``on_fatal`` runs when even the base batch
    does not fit and returns what to tell the user was saved.
    """

    def __init__(
        self,
        model: GovernedPPO,
        governor: Governor,
        config: Config,
        *,
        on_event: Callable[[OomEvent], None],
        on_fatal: Callable[[], str],
    ) -> None:
        self.model, self.governor, self.config = model, governor, config
        self.on_event, self.on_fatal = on_event, on_fatal

    def __call__(self) -> None:
        _free_cuda_memory()
        model = self.model
        base = fit_batch(self.config.ppo.batch_size, self.config)
        failed = model.batch_size
        if failed <= base:
            saved = self.on_fatal()
            raise PerfmodeError(
                f"CUDA ran out of memory even at the base batch size {failed}; saved {saved}. "
                "Lower ppo.batch_size or ppo.net_arch, raise modes.*.cuda_memory_fraction, free "
                "the GPU, or train with --device cpu; then run `perfmode train` again to resume"
            )
        smaller = max(base, failed // 2)
        self.governor.cap_batch(smaller)
        model.batch_size = smaller
        log.warning(
            "⚠️  CUDA out of memory at batch %d; redoing the update with batch %d "
            "(no batch above %d for the rest of the run)",
            failed,
            smaller,
            smaller,
        )
        self.on_event(OomEvent(utc_now().isoformat(), model.num_timesteps, failed, smaller))


def _free_cuda_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
