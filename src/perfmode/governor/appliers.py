"""The knobs that act at once: torch threads, the duty cycle, the CUDA memory cap.

Batch size and epochs wait for the next update (:meth:`Governor.apply_update_knobs`).
torch is imported inside the methods: ``perfmode status`` imports the governor's package
for its lines and must start fast.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from perfmode.governor.duty import DutyCycle
from perfmode.governor.gpu import blocking_sync
from perfmode.governor.load import LoadSensor
from perfmode.governor.threads import ThreadPolicy

if TYPE_CHECKING:
    from perfmode.governor.governor import Knobs


class KnobAppliers:
    def __init__(self, device: str, load: LoadSensor) -> None:
        self.device = device
        self.duty = (
            DutyCycle(clock=time.perf_counter, settle=blocking_sync())
            if device == "cuda"
            else DutyCycle()
        )
        self.threads = ThreadPolicy(load)

    def apply_now(self, k: Knobs, phase: str) -> None:
        import torch

        self.threads.set_fixed(k.torch_threads)
        self.apply_threads(phase)
        self.duty.set_share(k.cpu_share)
        if self.device == "cuda":
            # Uncapped is a fraction of 1.0: the call replaces any earlier cap.
            torch.cuda.set_per_process_memory_fraction(k.cuda_memory_fraction or 1.0)

    def apply_threads(self, phase: str) -> None:
        import torch

        n = self.threads.for_phase(phase)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
