"""The end-of-training learning-rate decay (training/schedule.py; train.lr_decay_start, issue 19)."""

import pytest
import torch

from scenesynth.training.schedule import lr_scale, set_learning_rates


def test_constant_without_a_decay_start() -> None:
    assert [lr_scale(step, 10, None) for step in (0, 5, 9)] == [1.0, 1.0, 1.0]


def test_falls_linearly_from_the_start_and_the_last_update_still_moves() -> None:
    scales = [lr_scale(step, 10, 0.6) for step in range(10)]
    assert scales[:6] == [1.0] * 6
    assert scales[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])  # steps 6..9 of 10: the decay's 4 updates
    assert all(a >= b for a, b in zip(scales, scales[1:]))


def test_rates_set_on_every_group_from_their_base() -> None:
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt_g = torch.optim.Adam([{"params": [weights[0]]}, {"params": [weights[1]]}], lr=1.0)
    opt_d = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    set_learning_rates([(opt_g, 4e-4), (opt_d, 1e-4)], 0.5)
    assert [g["lr"] for g in opt_g.param_groups] == [2e-4, 2e-4]
    assert opt_d.param_groups[0]["lr"] == 5e-5
