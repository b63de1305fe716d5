"""The four contrastive losses of the paper, as corrected in docs/paper.md section 4.

Every feature is L2-normalised before every dot product (docs/paper.md section 4), so each
loss is invariant to the scale of its inputs. All losses are means over the batch
and are computed in log-space (logsumexp / cross_entropy), so large logits (small
tau, large gammas) give no overflow and masked terms are -inf, never NaN.

Paper typos corrected here (docs/paper.md section 4):
- SC (eq. 2) lacks its -log and uses w_i for the proxy; it is ContraGAN's 2C loss,
  whose numerator also holds the other samples with the same caption.
- L2W: c_{k,i} = sum_r exp(alpha f) is a typo for sum_j alpha_ji r_j; eq. 6 has a
  stray minus sign; eq. 7 means the word features w, not s. We follow XMC-GAN.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

# Below this norm a vector is treated as zero (F.normalize's clamp); padded words
# are zero vectors and must not produce NaN.
_NORM_EPS = 1e-12


def _unit(x: Tensor) -> Tensor:
    """L2-normalise along the last (feature) axis."""
    return F.normalize(x, p=2.0, dim=-1, eps=_NORM_EPS)


def _check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor, ndim: int) -> None:
    if a.dim() != ndim or a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must both have {ndim} dims and one shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _diagonal_cross_entropy(logits: Tensor) -> Tensor:
    """Mean over rows i of -log softmax(logits[i])[i]: the matching pair is on the diagonal."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets)


def sentence_contrastive_loss(
    anchor: Tensor, proxy: Tensor, caption_ids: Tensor, tau: float
) -> Tensor:
    """Sentence-conditioned contrastive loss (SC), ContraGAN's 2C form.

    For each i, with a = normalised anchor h_g(f), p = normalised sentence proxy:
      -log [(exp(a_i.p_i/tau) + sum_{k!=i, same caption} exp(a_i.a_k/tau))
            / (exp(a_i.p_i/tau) + sum_{k!=i} exp(a_i.a_k/tau))]
    averaged over i. Samples sharing a caption are positives (hence caption_ids),
    all other samples are negatives; this keeps the generated audio diverse.
    Edge cases: B = 1, or all captions identical, give exactly 0.

    anchor, proxy: [B, P]; caption_ids: [B] (equal id <=> identical caption).
    """
    _check_same_shape("anchor", anchor, "proxy", proxy, ndim=2)
    batch = anchor.shape[0]
    if caption_ids.shape != (batch,):
        raise ValueError(f"caption_ids must have shape ({batch},), got {tuple(caption_ids.shape)}")
    a, p = _unit(anchor), _unit(proxy)
    positive = (a * p).sum(dim=-1, keepdim=True) / tau  # [B, 1]
    anchor_logits = a @ a.transpose(0, 1) / tau  # [B, B]
    others = ~torch.eye(batch, dtype=torch.bool, device=anchor.device)
    same_caption = caption_ids.unsqueeze(0) == caption_ids.unsqueeze(1)
    # -inf drops a term from a logsumexp; exp(-inf) = 0 also gives it zero gradient.
    numerator = torch.cat([positive, anchor_logits.masked_fill(~(others & same_caption), -torch.inf)], 1)
    denominator = torch.cat([positive, anchor_logits.masked_fill(~others, -torch.inf)], 1)
    return (torch.logsumexp(denominator, dim=1) - torch.logsumexp(numerator, dim=1)).mean()


def fake_to_real_loss(fake_feature: Tensor, real_feature: Tensor, tau: float) -> Tensor:
    """Fake-to-real contrastive loss (F2R, paper eq. 3).

    -log softmax_k(f^_i . f_k / tau)[i], mean over i: each fake global feature must be
    nearest to the real feature of its own caption among the batch's real features.
    B = 1 gives exactly 0. The caller detaches real_feature (the generator's term).

    fake_feature, real_feature: [B, C] global (sum-pooled) discriminator features.
    """
    _check_same_shape("fake_feature", fake_feature, "real_feature", real_feature, ndim=2)
    logits = _unit(fake_feature) @ _unit(real_feature).transpose(0, 1) / tau
    return _diagonal_cross_entropy(logits)


def global_to_sentence_loss(audio_embed: Tensor, text_embed: Tensor, tau: float) -> Tensor:
    """Global-to-sentence contrastive loss (G2S, paper eq. 4).

    -log softmax_k(f_i . s_k / tau)[i], mean over i, audio -> text direction only
    (as the paper and docs/paper.md section 4 write it). B = 1 gives exactly 0.

    audio_embed, text_embed: [B, P], both projected into one space.
    """
    _check_same_shape("audio_embed", audio_embed, "text_embed", text_embed, ndim=2)
    logits = _unit(audio_embed) @ _unit(text_embed).transpose(0, 1) / tau
    return _diagonal_cross_entropy(logits)


def word_region_scores(
    regions: Tensor,
    words: Tensor,
    word_mask: Tensor,
    gamma1: float,
    gamma2: float,
) -> Tensor:
    """Score matrix S[a, b] between the regions of audio a and the words of text b.

    alpha_ji = softmax_j(gamma1 cos(r_j^a, w_i^b)); c_i = sum_j alpha_ji r_j^a;
    S[a, b] = (1/gamma2) log sum_{real words i of b} exp(gamma2 cos(w_i^b, c_i)).

    cos(w_i, c_i) needs w_i.c_i = sum_j alpha_ji cos_ji and |c_i|^2 = alpha_i^T G alpha_i
    with G = r r^T the region Gram matrix, so the [B, B, L, E] context tensor is never
    built. Memory: a few [B, B, L, R] tensors (B=64, L=77, R=128: ~160 MB each in
    float32), fine for realistic sizes; chunk over b if that ever becomes too much.

    regions: [B, R, E]; words: [B, L, E]; word_mask: [B, L] bool, True = real token.
    Returns [B, B] (rows: audio, columns: text).
    """
    if regions.dim() != 3 or words.dim() != 3 or regions.shape[0] != words.shape[0]:
        raise ValueError(f"regions [B, R, E] and words [B, L, E] expected, got "
                         f"{tuple(regions.shape)} and {tuple(words.shape)}")
    if regions.shape[2] != words.shape[2]:
        raise ValueError(f"regions and words must share E, got {regions.shape[2]} and {words.shape[2]}")
    if word_mask.shape != words.shape[:2]:
        raise ValueError(f"word_mask must have shape {tuple(words.shape[:2])}, got {tuple(word_mask.shape)}")
    word_mask = word_mask.to(torch.bool)
    # A caption without a real word has S = -inf and a NaN loss: refuse it loudly.
    if not bool(word_mask.any(dim=1).all()):
        raise ValueError("every caption needs at least one real word (word_mask row all False)")

    r, w = _unit(regions), _unit(words)
    # cos_wr[a, b, i, j] = cos(w_i^b, r_j^a)
    cos_wr = torch.einsum("bie,aje->abij", w, r)
    alpha = torch.softmax(gamma1 * cos_wr, dim=-1)  # over regions j
    word_dot_context = (alpha * cos_wr).sum(dim=-1)  # w_i^b . c_i   [B, B, L]
    gram = r @ r.transpose(1, 2)  # [B(a), R, R], broadcast over b below
    context_sq_norm = ((alpha @ gram.unsqueeze(1)) * alpha).sum(dim=-1)  # |c_i|^2  [B, B, L]
    context_norm = context_sq_norm.clamp_min(_NORM_EPS**2).sqrt()
    word_context_cos = word_dot_context / context_norm
    logits = (gamma2 * word_context_cos).masked_fill(~word_mask.unsqueeze(0), -torch.inf)
    return torch.logsumexp(logits, dim=-1) / gamma2


def local_to_word_loss(
    regions: Tensor,
    words: Tensor,
    word_mask: Tensor,
    gamma1: float,
    gamma2: float,
    gamma3: float,
) -> Tensor:
    """Local-to-word contrastive loss (L2W) as XMC-GAN implements it (docs/paper.md section 4).

    L = CE(gamma3 S, I) + CE(gamma3 S^T, I) with S from word_region_scores: audio -> text
    and text -> audio. Padded words contribute nothing; B = 1 gives exactly 0.
    """
    scores = gamma3 * word_region_scores(regions, words, word_mask, gamma1, gamma2)
    return _diagonal_cross_entropy(scores) + _diagonal_cross_entropy(scores.transpose(0, 1))
