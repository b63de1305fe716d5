"""Contrastive losses (docs/paper.md section 4) against the formulas written with plain loops.

The loop references follow docs/paper.md section 4 term by term (loops over samples i, k,
words and regions; exp and log written out, no logsumexp), in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from scenesynth.losses import (
    fake_to_real_loss,
    global_to_sentence_loss,
    local_to_word_loss,
    sentence_contrastive_loss,
    word_region_scores,
)

F64 = torch.float64
TAU = 0.1  # the paper's values (params.yaml)
GAMMAS = (5.0, 5.0, 50.0)


# ---------------------------------------------------------------- loop references
def unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt(torch.sum(v * v))


def loop_sc(anchor, proxy, caption_ids, tau=TAU):
    batch = anchor.shape[0]
    a = [unit(anchor[i]) for i in range(batch)]
    p = [unit(proxy[i]) for i in range(batch)]
    total = 0.0
    for i in range(batch):
        positive = torch.exp(torch.dot(a[i], p[i]) / tau)
        numerator, denominator = positive, positive
        for k in range(batch):
            if k == i:
                continue
            term = torch.exp(torch.dot(a[i], a[k]) / tau)
            denominator = denominator + term
            if caption_ids[k] == caption_ids[i]:
                numerator = numerator + term
        total = total - torch.log(numerator / denominator)
    return total / batch


def loop_info_nce(queries, keys, tau=TAU):
    """-log exp(q_i.k_i/tau) / sum_k exp(q_i.k_k/tau), mean over i (F2R and G2S)."""
    batch = queries.shape[0]
    total = 0.0
    for i in range(batch):
        q = unit(queries[i])
        denominator = 0.0
        for k in range(batch):
            denominator = denominator + torch.exp(torch.dot(q, unit(keys[k])) / tau)
        total = total - torch.log(torch.exp(torch.dot(q, unit(keys[i])) / tau) / denominator)
    return total / batch


def loop_scores(regions, words, word_mask, gamma1, gamma2):
    """S[a][b] = (1/gamma2) log sum_{real i} exp(gamma2 cos(w_i^b, c_i)), c_i = sum_j alpha_ji r_j^a."""
    batch, n_regions, n_words = regions.shape[0], regions.shape[1], words.shape[1]
    scores = [[None] * batch for _ in range(batch)]
    for a in range(batch):
        r = [unit(regions[a, j]) for j in range(n_regions)]
        for b in range(batch):
            pooled = 0.0
            for i in range(n_words):
                if not word_mask[b, i]:
                    continue
                w = unit(words[b, i])
                weights = [torch.exp(gamma1 * torch.dot(r[j], w)) for j in range(n_regions)]
                normaliser = sum(weights)
                context = sum(weights[j] / normaliser * r[j] for j in range(n_regions))
                cosine = torch.dot(w, context) / torch.sqrt(torch.dot(context, context))
                pooled = pooled + torch.exp(gamma2 * cosine)
            scores[a][b] = torch.log(pooled) / gamma2
    return scores


def loop_l2w(regions, words, word_mask, gamma1=5.0, gamma2=5.0, gamma3=50.0):
    scores = loop_scores(regions, words, word_mask, gamma1, gamma2)
    batch = regions.shape[0]
    audio_to_text, text_to_audio = 0.0, 0.0
    for a in range(batch):
        row = sum(torch.exp(gamma3 * scores[a][b]) for b in range(batch))
        audio_to_text = audio_to_text - torch.log(torch.exp(gamma3 * scores[a][a]) / row)
    for b in range(batch):
        column = sum(torch.exp(gamma3 * scores[a][b]) for a in range(batch))
        text_to_audio = text_to_audio - torch.log(torch.exp(gamma3 * scores[b][b]) / column)
    return audio_to_text / batch + text_to_audio / batch


# ---------------------------------------------------------------- inputs
def rand(gen, *shape, dtype=F64):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def random_mask(gen, batch, n_words):
    """Arbitrary (not only prefix) masks with at least one real word per caption."""
    mask = torch.rand(batch, n_words, generator=gen) < 0.6
    mask[torch.arange(batch), torch.randint(n_words, (batch,), generator=gen)] = True
    return mask


def l2w_inputs(seed, batch, n_regions=6, n_words=5, dim=4):
    gen = torch.Generator().manual_seed(seed)
    return rand(gen, batch, n_regions, dim), rand(gen, batch, n_words, dim), random_mask(gen, batch, n_words)


CAPTION_CASES = [  # several sizes, with and without duplicate captions
    [0],
    [0, 1],
    [3, 3],
    [0, 1, 2, 3, 4],
    [0, 1, 0, 2, 1, 0, 5],
    [7, 7, 7, 7],
]


def assert_same_value_and_grad(vectorised, loop, inputs, atol=1e-8):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    value_vec = vectorised(*inputs)
    grads_vec = torch.autograd.grad(value_vec, inputs)
    inputs_loop = [x.detach().clone().requires_grad_() for x in inputs]
    value_loop = loop(*inputs_loop)
    grads_loop = torch.autograd.grad(value_loop, inputs_loop, allow_unused=True)
    torch.testing.assert_close(value_vec, value_loop, atol=atol, rtol=1e-9)
    for g_vec, g_loop in zip(grads_vec, grads_loop):
        expected = torch.zeros_like(g_vec) if g_loop is None else g_loop
        torch.testing.assert_close(g_vec, expected, atol=atol, rtol=1e-7)


# ---------------------------------------------------------------- (a) values and gradients vs loops
@pytest.mark.parametrize("caption_list", CAPTION_CASES)
def test_sc_matches_loop(caption_list):
    gen = torch.Generator().manual_seed(len(caption_list))
    ids = torch.tensor(caption_list)
    batch = len(caption_list)
    for tau in (TAU, 0.5):
        assert_same_value_and_grad(
            lambda a, p: sentence_contrastive_loss(a, p, ids, tau),
            lambda a, p: loop_sc(a, p, ids, tau),
            [rand(gen, batch, 6), rand(gen, batch, 6)],
        )


@pytest.mark.parametrize("batch", [1, 2, 5, 9])
@pytest.mark.parametrize("loss, name", [(fake_to_real_loss, "f2r"), (global_to_sentence_loss, "g2s")])
def test_f2r_and_g2s_match_loop(batch, loss, name):
    gen = torch.Generator().manual_seed(batch)
    for tau in (TAU, 0.7):
        assert_same_value_and_grad(
            lambda q, k: loss(q, k, tau),
            lambda q, k: loop_info_nce(q, k, tau),
            [rand(gen, batch, 8), rand(gen, batch, 8)],
        )


@pytest.mark.parametrize("batch", [1, 2, 4, 6])
def test_l2w_matches_loop(batch):
    regions, words, mask = l2w_inputs(batch, batch)
    for gammas in (GAMMAS, (2.0, 1.0, 10.0)):
        assert_same_value_and_grad(
            lambda r, w: local_to_word_loss(r, w, mask, *gammas),
            lambda r, w: loop_l2w(r, w, mask, *gammas),
            [regions, words],
        )


def test_l2w_score_matrix_orientation_matches_loop():
    """S[a, b]: rows are audio (regions), columns are text (words)."""
    regions, words, mask = l2w_inputs(11, 3, n_regions=5, n_words=4)
    expected = torch.stack([torch.stack(row) for row in loop_scores(regions, words, mask, 5.0, 5.0)])
    torch.testing.assert_close(word_region_scores(regions, words, mask, 5.0, 5.0), expected, atol=1e-10, rtol=0)


# ---------------------------------------------------------------- (b) gradcheck
def test_gradcheck_all_losses():
    gen = torch.Generator().manual_seed(5)
    ids = torch.tensor([0, 1, 0])
    inputs = [rand(gen, 3, 4).requires_grad_() for _ in range(2)]
    assert torch.autograd.gradcheck(lambda a, p: sentence_contrastive_loss(a, p, ids, TAU), inputs)
    assert torch.autograd.gradcheck(lambda a, b: fake_to_real_loss(a, b, TAU), inputs)
    assert torch.autograd.gradcheck(lambda a, b: global_to_sentence_loss(a, b, TAU), inputs)
    regions, words, mask = l2w_inputs(6, 3, n_regions=4, n_words=3, dim=3)
    l2w_args = [regions.requires_grad_(), words.requires_grad_()]
    assert torch.autograd.gradcheck(lambda r, w: local_to_word_loss(r, w, mask, *GAMMAS), l2w_args)


# ---------------------------------------------------------------- (c) edges
def test_batch_of_one_gives_zero():
    """B = 1: SC = -log(e^x / e^x) = 0; F2R, G2S, L2W are a softmax over one entry = 0."""
    gen = torch.Generator().manual_seed(0)
    x, y = rand(gen, 1, 5), rand(gen, 1, 5)
    regions, words, mask = l2w_inputs(0, 1)
    for value in (
        sentence_contrastive_loss(x, y, torch.tensor([4]), TAU),
        fake_to_real_loss(x, y, TAU),
        global_to_sentence_loss(x, y, TAU),
        local_to_word_loss(regions, words, mask, *GAMMAS),
    ):
        assert abs(value.item()) < 1e-12


def test_identical_captions():
    """All caption ids equal: SC's numerator equals its denominator -> 0. Identical text
    features make every row of the G2S/F2R/L2W logits constant -> log B (and 2 log B for L2W
    when the regions are identical too, both directions being uniform)."""
    gen = torch.Generator().manual_seed(2)
    batch = 5
    anchor, proxy = rand(gen, batch, 6), rand(gen, batch, 6)
    assert abs(sentence_contrastive_loss(anchor, proxy, torch.full((batch,), 3), TAU).item()) < 1e-12
    same_text = rand(gen, 1, 6).expand(batch, 6)
    assert global_to_sentence_loss(anchor, same_text, TAU).item() == pytest.approx(math.log(batch), abs=1e-12)
    assert fake_to_real_loss(anchor, same_text, TAU).item() == pytest.approx(math.log(batch), abs=1e-12)
    regions = rand(gen, 1, 6, 4).expand(batch, 6, 4)
    words = rand(gen, 1, 3, 4).expand(batch, 3, 4)
    mask = torch.ones(batch, 3, dtype=torch.bool)
    assert local_to_word_loss(regions, words, mask, *GAMMAS).item() == pytest.approx(2 * math.log(batch), abs=1e-10)


def test_sc_large_tau_limit():
    """tau -> inf: every exp -> 1, so SC -> mean_i -log((1 + n_same_i) / B) (derived)."""
    gen = torch.Generator().manual_seed(3)
    ids = torch.tensor([0, 0, 1, 2, 2, 2])
    batch = len(ids)
    n_same = (ids[:, None] == ids[None, :]).sum(1) - 1
    expected = (-torch.log((1.0 + n_same) / batch)).mean()
    value = sentence_contrastive_loss(rand(gen, batch, 5), rand(gen, batch, 5), ids, tau=1e6)
    torch.testing.assert_close(value, expected.to(F64), atol=1e-5, rtol=0)


def test_one_real_word_per_caption():
    """With one real word the log-sum-exp pooling is the identity: S[a, b] = cos(w, c)."""
    regions, words, _ = l2w_inputs(4, 4, n_words=5)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[torch.arange(4), torch.tensor([0, 4, 2, 2])] = True
    scores = word_region_scores(regions, words, mask, 5.0, 5.0)
    for a in range(4):
        for b in range(4):
            w = unit(words[b, mask[b]][0])
            r = torch.stack([unit(regions[a, j]) for j in range(regions.shape[1])])
            context = torch.softmax(5.0 * (r @ w), 0) @ r
            assert scores[a, b].item() == pytest.approx((w @ unit(context)).item(), abs=1e-12)
    assert_same_value_and_grad(
        lambda r, w: local_to_word_loss(r, w, mask, *GAMMAS), lambda r, w: loop_l2w(r, w, mask), [regions, words]
    )


def test_padded_words_contribute_nothing():
    """Changing (or zeroing) padded word features changes neither the loss nor the real words'
    gradient, and the padded features get exactly zero gradient."""
    regions, words, mask = l2w_inputs(7, 4)
    mask[0] = False
    mask[0, 1] = True  # caption 0: a single real word
    results = []
    for padded_value in (0.0, 1e3):
        w = words.clone()
        w[~mask] = padded_value
        w.requires_grad_()
        loss = local_to_word_loss(regions, w, mask, *GAMMAS)
        (grad,) = torch.autograd.grad(loss, w)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert torch.count_nonzero(grad[~mask]) == 0
        results.append((loss, grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-12, rtol=0)


def test_caption_without_a_real_word_is_refused():
    regions, words, mask = l2w_inputs(8, 3)
    mask[1] = False
    with pytest.raises(ValueError, match="at least one real word"):
        local_to_word_loss(regions, words, mask, *GAMMAS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_temperatures_stay_finite(dtype):
    """tau = 1e-4 (logits up to 1e4) and gammas of 1e3 / 1e4: log-space, no NaN/Inf; the
    loop version overflows (exp(1e4) = inf) which is why the functions use logsumexp."""
    gen = torch.Generator().manual_seed(9)
    ids = torch.tensor([0, 1, 0, 2])
    x, y = rand(gen, 4, 6, dtype=dtype).requires_grad_(), rand(gen, 4, 6, dtype=dtype).requires_grad_()
    regions, words, mask = l2w_inputs(9, 4)
    regions, words = regions.to(dtype).requires_grad_(), words.to(dtype).requires_grad_()
    for tau in (1e-4, 1e4):
        values = (sentence_contrastive_loss(x, y, ids, tau), fake_to_real_loss(x, y, tau), global_to_sentence_loss(x, y, tau))
        for value in values:
            grads = torch.autograd.grad(value, (x, y), allow_unused=True)
            assert torch.isfinite(value)
            assert all(g is None or torch.isfinite(g).all() for g in grads)
    for gammas in ((1e3, 1e3, 1e4), (1e-3, 1e-3, 1e-3)):
        value = local_to_word_loss(regions, words, mask, *gammas)
        grads = torch.autograd.grad(value, (regions, words))
        assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in grads)
    assert not torch.isfinite(loop_info_nce(x.detach().double(), y.detach().double(), 1e-4))


def test_small_logits_approach_log_batch():
    """tau -> inf makes the softmax uniform: F2R = G2S -> log B (derived)."""
    gen = torch.Generator().manual_seed(10)
    x, y = rand(gen, 6, 5), rand(gen, 6, 5)
    for loss in (fake_to_real_loss, global_to_sentence_loss):
        assert loss(x, y, tau=1e6).item() == pytest.approx(math.log(6), abs=1e-5)


def test_invariant_to_feature_scaling():
    """Every feature vector is L2-normalised first, so positive per-vector scales
    (1e-4 .. 1e4) change nothing."""
    gen = torch.Generator().manual_seed(12)

    def scales(*shape):
        return torch.exp(torch.empty(*shape, 1, dtype=F64).uniform_(-9.2, 9.2, generator=gen))

    ids = torch.tensor([0, 1, 1, 2, 0])
    x, y = rand(gen, 5, 6), rand(gen, 5, 6)
    xs, ys = x * scales(5), y * scales(5)
    for loss in (lambda a, b: sentence_contrastive_loss(a, b, ids, TAU), lambda a, b: fake_to_real_loss(a, b, TAU),
                 lambda a, b: global_to_sentence_loss(a, b, TAU)):
        torch.testing.assert_close(loss(xs, ys), loss(x, y), atol=1e-10, rtol=0)
    regions, words, mask = l2w_inputs(12, 5)
    torch.testing.assert_close(
        local_to_word_loss(regions * scales(5, 6), words * scales(5, 5), mask, *GAMMAS),
        local_to_word_loss(regions, words, mask, *GAMMAS),
        atol=1e-9,
        rtol=0,
    )


def test_shape_mismatches_are_refused():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError):
        fake_to_real_loss(x, torch.randn(2, 4), TAU)
    with pytest.raises(ValueError):
        sentence_contrastive_loss(x, x, torch.tensor([0, 1]), TAU)
    with pytest.raises(ValueError):
        local_to_word_loss(torch.randn(3, 5, 4), torch.randn(3, 2, 4), torch.ones(3, 3, dtype=torch.bool), *GAMMAS)
