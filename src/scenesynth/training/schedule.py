"""Learning-rate decay at the end of training (``train.lr_decay_start``; none in the paper's training).

Issue 19: the demo's generator does not settle. Its periodic evaluation swings from one hundred steps
to the next (foreground 0.79 -> 0.53 -> 0.86 at steps 900-1100 of one run; a kind from 0.98 to 0.30),
so the step a run ends on decides much of its score, and the score differs from seed to seed. Both
learning rates falling linearly to zero over the last part of training let the two players stop
where they are instead of at a random point of the swing. The rate is a pure function of the step,
so a resumed run continues the same schedule without any state in the checkpoint.
"""

from __future__ import annotations

import torch


def lr_scale(step: int, steps: int, decay_start: float | None) -> float:
    """Factor on both learning rates for the update that takes the model from ``step`` to ``step + 1``:
    1 before ``decay_start * steps``, then falling by equal decrements, from the first decaying update
    on, to the last update's 1 / (n + 1) for a decay of n updates (never 0: every update moves); None
    keeps 1 throughout."""
    if decay_start is None:
        return 1.0
    start = decay_start * steps
    if step < start:
        return 1.0
    return max(steps - step, 0) / (steps - start + 1)


def set_learning_rates(optimizers: list[tuple[torch.optim.Optimizer, float]], scale: float) -> None:
    """Every parameter group of each (optimiser, base rate) at base rate x scale."""
    for optimizer, base in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = base * scale
