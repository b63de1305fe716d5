"""MSGAN's mode-seeking term (issue 19): large for a generator that ignores its noise, small for one that uses it."""

import pytest
import torch

from scenesynth.losses.mode_seeking import EPS, mode_seeking_loss, mode_seeking_term
from scenesynth.text.batch import TextBatch


def test_the_term_is_the_inverse_of_output_distance_per_noise_distance():
    z_a, z_b = torch.zeros(2, 4), torch.ones(2, 4)  # |z_a - z_b| = 1
    same = torch.zeros(2, 1, 3, 3)
    assert mode_seeking_loss(same, same, z_a, z_b) == pytest.approx(1 / EPS)
    apart = torch.full((2, 1, 3, 3), 2.0)
    assert mode_seeking_loss(same, apart, z_a, z_b) == pytest.approx(1 / (2 + EPS))
    with pytest.raises(ValueError, match="pairs must match"):
        mode_seeking_loss(same, apart[:1], z_a, z_b)


def test_its_gradient_pushes_two_outputs_of_one_prompt_apart():
    fake_a = torch.zeros(1, 1, 2, 2, requires_grad=True)
    fake_b = torch.full((1, 1, 2, 2), 0.5)
    mode_seeking_loss(fake_a, fake_b, torch.zeros(1, 3), torch.ones(1, 3)).backward()
    assert (fake_a.grad > 0).all()  # descending moves fake_a away from fake_b (below it)


def test_a_generator_that_ignores_its_noise_pays_the_most():
    text = TextBatch(torch.randn(4, 5), torch.zeros(4, 2, 3), torch.ones(4, 2, dtype=torch.bool), torch.arange(4))
    weight = torch.randn(5, 6)

    def ignores(z, t):
        return (t.sentence @ weight)[:, None, None, :]

    def uses(z, t):
        return (t.sentence @ weight + 3.0 * z[:, :6])[:, None, None, :]

    z = torch.randn(4, 8)
    assert mode_seeking_term(ignores, text, z, ignores(z, text), 2) == pytest.approx(1 / EPS)
    assert mode_seeking_term(uses, text, z, uses(z, text), 2) < 10.0


def test_a_cap_stops_paying_for_spread_beyond_it_and_changes_nothing_below_it():
    z_a, z_b = torch.zeros(2, 3), torch.ones(2, 3)  # |z_a - z_b| = 1: the ratio is the output distance
    fake_b = torch.zeros(2, 1, 2, 2)
    far = torch.full((2, 1, 2, 2), 2.0, requires_grad=True)  # ratio 2, above a cap of 0.9
    capped = mode_seeking_loss(far, fake_b, z_a, z_b, cap=0.9)
    capped.backward()
    assert capped.item() == pytest.approx(1 / (0.9 + EPS)) and (far.grad == 0).all()
    near = torch.full((2, 1, 2, 2), 0.5, requires_grad=True)  # ratio 0.5, below the cap
    mode_seeking_loss(near, fake_b, z_a, z_b, cap=0.9).backward()
    grad_capped = near.grad.clone()
    near.grad = None
    mode_seeking_loss(near, fake_b, z_a, z_b).backward()
    assert torch.equal(grad_capped, near.grad) and (near.grad < 0).all()
