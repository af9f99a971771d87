"""Checkpoints written beside training: the state copied at once, the files in a thread.

A checkpoint is small (a few hundred kB), but writing one costs tens of milliseconds: torch
serialises two state dicts, and five files and the folder are fsynced before the rename
that makes it whole. At the default 10,000 steps a fast run saves more than once a second,
so a write in the foreground stalls training by several percent. :class:`BackgroundWriter`
copies the state (the weights, the optimizer state and the episodes: well under a
millisecond) and writes the copy in a thread while the next rollout runs.

What a foreground write promised still holds:

- One write at a time, in order: a new one first waits for the one before.
- Whole or not at all: the thread runs :func:`~perfmode.checkpoint.folders.save_checkpoint`
  (a temporary folder, then a rename), so a kill mid-write leaves a ``.step_*.tmp`` that the
  next start removes, never a half checkpoint.
- Finished before the process ends: the thread is not a daemon, so an exit waits for it;
  the trainer waits for it itself before its final checkpoint (:meth:`wait`).
- A failed write is not lost: :meth:`submit`, :meth:`collect` and :meth:`wait` raise it in
  the training thread (:class:`WriteFailed`, with the step count it was for).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import torch

from perfmode.checkpoint.folders import Checkpoint
from perfmode.checkpoint.io import TrainingState

Write = Callable[[TrainingState, dict[str, Any]], Checkpoint]


class WriteFailed(Exception):
    """The background write of the checkpoint at ``timesteps`` raised ``error``."""

    def __init__(self, timesteps: int, error: OSError) -> None:
        super().__init__(f"checkpoint at {timesteps} steps: {error}")
        self.timesteps, self.error = timesteps, error


def snapshot(state: TrainingState) -> TrainingState:
    """A copy of ``state`` that training can no longer change.

    :func:`~perfmode.checkpoint.state.capture` keeps the live tensors of the weights and the
    optimizer (the next update changes them in place): those are cloned. The rest it takes
    as copies already; each env's episode is copied again, as an env's ``get_state`` may
    hand out its own objects. (A ``copy.deepcopy`` of the whole state takes ~40× longer.)
    """
    return dataclasses.replace(
        state,
        policy=_clone(state.policy),
        optimizer=_clone(state.optimizer),
        envs=copy.deepcopy(state.envs),
    )


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_clone(v) for v in obj)
    return obj


class BackgroundWriter:
    """Writes one checkpoint at a time in a thread; the trainer collects each result."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._thread: threading.Thread | None = None
        self._steps = 0
        self._result: Checkpoint | None = None
        self._error: OSError | None = None

    def submit(self, state: TrainingState, meta: dict[str, Any]) -> Checkpoint | None:
        """Start writing ``state`` (snapshotted now), after waiting for the write before;
        returns that write's checkpoint if it was not collected yet.

        Raises :class:`WriteFailed` for that earlier write, and then writes nothing.
        """
        done = self.wait()
        copied = snapshot(state)
        self._steps = copied.num_timesteps
        self._thread = threading.Thread(
            target=self._run, args=(copied, meta), name="perfmode-checkpoint", daemon=False
        )
        self._thread.start()
        return done

    def _run(self, state: TrainingState, meta: dict[str, Any]) -> None:
        try:
            self._result = self._write(state, meta)
        except OSError as e:
            self._error = e

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def collect(self) -> Checkpoint | None:
        """The checkpoint whose write has ended since the last call; never waits."""
        return None if self.busy else self.wait()

    def wait(self) -> Checkpoint | None:
        """Wait for the write in flight; the checkpoint written since the last call, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise WriteFailed(self._steps, error)
        result, self._result = self._result, None
        return result
