"""DiffAugment's time shift for D's inputs (training/augment.py; train.d_augment_shift, issue 19)."""

import pytest
import torch

from scenesynth.training.augment import random_time_shift


def test_each_row_is_rolled_in_time_within_the_bound_and_keeps_its_frames() -> None:
    torch.manual_seed(0)
    mels = torch.randn(64, 1, 3, 16)
    shifted = random_time_shift(mels, 0.25)
    seen = set()
    for before, after in zip(mels, shifted):
        matches = [s for s in range(-4, 5) if torch.equal(torch.roll(before, s, dims=-1), after)]
        assert len(matches) == 1  # a roll by at most round(0.25 * 16) = 4 frames, every bin alike
        seen.add(matches[0])
    assert seen == set(range(-4, 5))  # every allowed shift is drawn, not one for the whole batch


def test_the_shift_passes_gradients_and_zero_draws_nothing() -> None:
    mels = torch.randn(4, 1, 2, 8, requires_grad=True)
    random_time_shift(mels, 0.5).sum().backward()
    assert torch.equal(mels.grad, torch.ones_like(mels))
    state = torch.get_rng_state()
    assert random_time_shift(mels, 0.0) is mels and torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("fraction", [0.01, 0.03])
def test_a_bound_under_one_frame_is_no_shift(fraction) -> None:
    mels = torch.randn(2, 1, 2, 16)
    assert torch.equal(random_time_shift(mels, fraction), mels)
