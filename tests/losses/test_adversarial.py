"""Hinge losses (docs/paper.md section 4) against the formula written with plain loops."""

from __future__ import annotations

import pytest
import torch

from scenesynth.losses import hinge_d_loss, hinge_g_loss


def loop_hinge_d(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """mean_i max(0, 1 - real_i) + mean_i max(0, 1 + fake_i), one sample at a time."""
    real_sum = torch.zeros((), dtype=real_logit.dtype)
    for i in range(real_logit.shape[0]):
        margin = 1.0 - real_logit[i]
        real_sum = real_sum + (margin if margin > 0 else margin * 0.0)
    fake_sum = torch.zeros((), dtype=fake_logit.dtype)
    for i in range(fake_logit.shape[0]):
        margin = 1.0 + fake_logit[i]
        fake_sum = fake_sum + (margin if margin > 0 else margin * 0.0)
    return real_sum / real_logit.shape[0] + fake_sum / fake_logit.shape[0]


def loop_hinge_g(fake_logit: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), dtype=fake_logit.dtype)
    for i in range(fake_logit.shape[0]):
        total = total - fake_logit[i]
    return total / fake_logit.shape[0]


@pytest.mark.parametrize("batch", [1, 2, 7, 32])
def test_hinge_matches_loops_values_and_gradients(batch: int) -> None:
    gen = torch.Generator().manual_seed(batch)
    real = (2.0 * torch.randn(batch, generator=gen, dtype=torch.float64)).requires_grad_()
    fake = (2.0 * torch.randn(batch, generator=gen, dtype=torch.float64)).requires_grad_()

    d_vec, d_loop = hinge_d_loss(real, fake), loop_hinge_d(real, fake)
    torch.testing.assert_close(d_vec, d_loop, atol=1e-12, rtol=0)
    grads_vec = torch.autograd.grad(d_vec, (real, fake))
    grads_loop = torch.autograd.grad(d_loop, (real, fake))
    for g_vec, g_loop in zip(grads_vec, grads_loop):
        torch.testing.assert_close(g_vec, g_loop, atol=1e-12, rtol=0)

    g_vec, g_loop = hinge_g_loss(fake), loop_hinge_g(fake)
    torch.testing.assert_close(g_vec, g_loop, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        torch.autograd.grad(g_vec, fake)[0], torch.autograd.grad(g_loop, fake)[0], atol=1e-12, rtol=0
    )


def test_hinge_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    # Keep logits away from the kinks at +-1, where relu is not differentiable.
    real = torch.tensor([0.3, 2.5, -1.7, 0.8], dtype=torch.float64, requires_grad=True)
    fake = torch.randn(5, generator=gen, dtype=torch.float64).mul(0.2).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(hinge_d_loss, (real, fake))
    assert torch.autograd.gradcheck(hinge_g_loss, (fake,))


def test_real_and_fake_batches_may_differ_in_size() -> None:
    real = torch.tensor([0.0, 2.0], dtype=torch.float64)  # relu(1 - .) = 1, 0 -> mean 0.5
    fake = torch.tensor([0.0, -3.0, 1.0], dtype=torch.float64)  # relu(1 + .) = 1, 0, 2 -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(1.5)
    torch.testing.assert_close(hinge_d_loss(real, fake), loop_hinge_d(real, fake))


def test_logits_shaped_b_by_1_give_the_same_loss() -> None:
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
    torch.testing.assert_close(hinge_d_loss(real[:, None], fake[:, None]), hinge_d_loss(real, fake))
    torch.testing.assert_close(hinge_g_loss(fake[:, None]), hinge_g_loss(fake))


def test_confident_discriminator_has_zero_loss_and_zero_gradient() -> None:
    """Beyond the margins (real > 1, fake < -1) D's hinge is 0 with no gradient: the point of a hinge."""
    real = torch.tensor([1.5, 3.0, 10.0], requires_grad=True)
    fake = torch.tensor([-1.5, -4.0, -100.0], requires_grad=True)
    loss = hinge_d_loss(real, fake)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(real.grad) == 0 and torch.count_nonzero(fake.grad) == 0


def test_batch_of_one() -> None:
    """B = 1: D = relu(1 - r) + relu(1 + f); G = -f."""
    real, fake = torch.tensor([0.25]), torch.tensor([0.5])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.75 + 1.5)
    assert hinge_g_loss(fake).item() == pytest.approx(-0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_logits_stay_finite(dtype: torch.dtype) -> None:
    real = torch.tensor([1e30, -1e30, 0.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([-1e30, 1e30, 0.0], dtype=dtype, requires_grad=True)
    d_loss = hinge_d_loss(real, fake)
    g_loss = hinge_g_loss(fake)
    d_grads = torch.autograd.grad(d_loss, (real, fake))
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert all(torch.isfinite(g).all() for g in d_grads)
    # Only the samples on the wrong side of the margin push: gradient -1/B and +1/B.
    torch.testing.assert_close(d_grads[0], torch.tensor([0.0, -1 / 3, -1 / 3], dtype=dtype))
    torch.testing.assert_close(d_grads[1], torch.tensor([0.0, 1 / 3, 1 / 3], dtype=dtype))


def test_r1_is_the_mean_squared_input_gradient_and_reaches_the_weights():
    """D(x) = sum(w * x^2) per row has gradient 2 w x: R1 = mean_i sum (2 w x_i)^2; its own gradient reaches w."""
    from scenesynth.losses.adversarial import r1_penalty

    w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    x = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], requires_grad=True)
    penalty = r1_penalty((w * x.pow(2)).sum(dim=1), x)
    expected = ((2 * w.detach() * x.detach()).pow(2).sum(dim=1)).mean()
    assert torch.allclose(penalty, expected)
    penalty.backward()
    # d/dw of mean_i sum_j 4 w_j^2 x_ij^2 = mean_i 8 w_j x_ij^2
    assert torch.allclose(w.grad, (8 * w.detach() * x.detach().pow(2)).mean(dim=0))


def test_the_mismatch_term_scores_real_clips_with_wrong_text_as_fake():
    from scenesynth.losses.adversarial import mismatched_text_loss

    # a logit of -1 or below (D calls the pair fake) costs nothing; +1 (D calls it real) costs 2
    assert float(mismatched_text_loss(torch.tensor([-3.0, -1.0]))) == 0.0
    assert float(mismatched_text_loss(torch.tensor([1.0, 1.0]))) == 2.0


def test_lecam_penalises_only_logits_past_the_other_sides_anchor():
    """LeCam: relu(D(real) - a_fake)^2 + relu(a_real - D(fake))^2, each averaged over its batch."""
    from scenesynth.losses.adversarial import lecam_penalty

    # anchors a_real = 1, a_fake = -1: a real logit of -1 or below and a fake logit of 1 or above cost nothing
    assert float(lecam_penalty(torch.tensor([-2.0, -1.0]), torch.tensor([1.0, 3.0]), 1.0, -1.0)) == 0.0
    # real logits 1 and -1 (2 and 0 past a_fake), fake logits -2 and 0 (3 and 1 short of a_real): 4/2 + (9+1)/2
    assert float(lecam_penalty(torch.tensor([1.0, -1.0]), torch.tensor([-2.0, 0.0]), 1.0, -1.0)) == 7.0


def test_lecam_anchors_start_at_the_first_batch_and_then_move_by_one_minus_the_decay():
    from scenesynth.losses.adversarial import lecam_anchors

    first = lecam_anchors(None, torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -3.0]), 0.9)
    assert first == (2.0, -2.0)
    moved = lecam_anchors(first, torch.tensor([12.0]), torch.tensor([8.0]), 0.9)
    assert moved == pytest.approx((0.9 * 2 + 0.1 * 12, 0.9 * -2 + 0.1 * 8))
