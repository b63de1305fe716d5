"""Discriminator and its output contract with the losses (docs/paper.md sections 3 and 4)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scenesynth.models.attention import AttentionStage
from scenesynth.models.discriminator import Discriminator, DiscriminatorOutput
from scenesynth.text.batch import TextBatch

BATCH, N_MELS, N_FRAMES, INIT, SENTENCE_DIM, WORD_DIM, N_WORDS = 3, 16, 32, (2, 4), 12, 10, 6
TINY = dict(base_channels=32, n_mels=N_MELS, n_frames=N_FRAMES, sentence_dim=SENTENCE_DIM, word_dim=WORD_DIM,
            heads=2, init_shape=INIT, min_channels=8, proj_dim=6, region_dim=5, attention_impl="tfsca",
            attention_plan=("single", "triple"), region_level=1)
EXPECTED_FIELDS = ["logit", "feature", "anchor", "proxy", "audio_embed", "text_embed", "regions", "words", "word_mask"]


def make_text(seed: int = 0) -> TextBatch:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(N_WORDS)[None, :] < torch.tensor([2, 6, 4])[:, None]
    words = torch.randn(BATCH, N_WORDS, WORD_DIM, generator=generator) * mask[..., None]
    return TextBatch(torch.randn(BATCH, SENTENCE_DIM, generator=generator), words, mask, torch.tensor([0, 1, 0]))


def make_mel() -> torch.Tensor:
    return torch.randn(BATCH, 1, N_MELS, N_FRAMES, generator=torch.Generator().manual_seed(1)) - 4.0


def test_output_has_exactly_the_fields_the_losses_consume() -> None:
    assert [field.name for field in dataclasses.fields(DiscriminatorOutput)] == EXPECTED_FIELDS


@pytest.mark.parametrize("impl", ["full", "axial", "tfsca"])
def test_output_shapes(impl: str) -> None:
    torch.manual_seed(0)
    discriminator = Discriminator(**{**TINY, "attention_impl": impl, "attention_plan": ("single", "triple")})
    text = make_text()
    out = discriminator(make_mel(), text)
    feature_dim = 32  # base channels on the final 2 x 4 map
    regions = (N_MELS // 4) * (N_FRAMES // 4)  # region_level 1: the 4 x 8 map
    assert out.logit.shape == (BATCH,)
    assert out.feature.shape == (BATCH, feature_dim)
    for name in ("anchor", "proxy", "audio_embed", "text_embed"):
        assert getattr(out, name).shape == (BATCH, 6), name
    assert out.regions.shape == (BATCH, regions, 5)
    assert out.words.shape == (BATCH, N_WORDS, 5)
    assert torch.equal(out.word_mask, text.word_mask)
    for name in EXPECTED_FIELDS[:-1]:
        assert torch.isfinite(getattr(out, name)).all(), name


def test_stage_order_mirrors_generator() -> None:
    discriminator = Discriminator(**{**TINY, "attention_plan": ("single", "triple")})
    modes = [stage.mode if isinstance(stage, AttentionStage) else None for stage in discriminator.attention]
    assert modes == ["single", "triple", None]  # block outputs at levels 2, 1, 0


@pytest.mark.parametrize("impl", ["full", "tfsca"])
def test_backward_reaches_every_parameter(impl: str) -> None:
    torch.manual_seed(0)
    discriminator = Discriminator(**{**TINY, "attention_impl": impl, "attention_plan": ("triple", "double")})
    with torch.no_grad():
        for stage in discriminator.attention:
            if isinstance(stage, AttentionStage):
                stage.gates.fill_(0.5)
    mel = make_mel().requires_grad_()
    out = discriminator(mel, make_text())
    loss = sum((getattr(out, name) * torch.randn_like(getattr(out, name))).sum() for name in EXPECTED_FIELDS[:-1])
    loss.backward()
    assert mel.grad is not None and torch.count_nonzero(mel.grad) > 0
    for name, parameter in discriminator.named_parameters():
        assert parameter.grad is not None, name
        sentence_query_or_key = ".sentence." in name and any(p in name for p in (".query.", ".queries.", "tokens.key"))
        if not sentence_query_or_key:  # A2S with one key: exactly zero gradient by construction
            assert torch.count_nonzero(parameter.grad) > 0, name


def test_logit_depends_on_the_sentence_through_the_projection_term() -> None:
    torch.manual_seed(0)
    discriminator = Discriminator(**{**TINY, "attention_plan": ()}).eval()
    text, mel = make_text(), make_mel()
    other = TextBatch(make_text(seed=5).sentence, text.words, text.word_mask, text.caption_ids)
    first, second = discriminator(mel, text), discriminator(mel, other)
    torch.testing.assert_close(first.feature, second.feature)  # no attention: the encoder ignores the text
    assert not torch.allclose(first.logit, second.logit)


def test_bad_configuration_or_input_raises() -> None:
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(**{**TINY, "n_frames": 48})
    with pytest.raises(ValueError, match="attention plan"):
        Discriminator(**{**TINY, "attention_plan": ("single", "double", "triple")})
    with pytest.raises(ValueError, match="region_level"):
        Discriminator(**{**TINY, "attention_plan": (), "region_level": 3})
    discriminator = Discriminator(**{**TINY, "attention_plan": ()})
    with pytest.raises(ValueError, match="mel must be"):
        discriminator(torch.randn(BATCH, 1, N_MELS, N_FRAMES // 2), make_text())


def test_minibatch_std_lets_the_discriminator_see_a_batch_of_identical_samples() -> None:
    """model.d_minibatch_std (issue 19): one more channel before the last block, the group's spread; a batch
    of one sample repeated gives D another logit than a batch whose samples differ, the same sample first."""
    from scenesynth.models.layers import minibatch_std

    x = torch.randn(4, 3, 2, 2)
    out = minibatch_std(x, 2)
    assert out.shape == (4, 4, 2, 2) and torch.equal(out[:, :3], x)
    assert torch.allclose(out[0, 3], out[2, 3]) and not torch.allclose(out[0, 3], out[1, 3])  # groups interleaved
    assert torch.allclose(minibatch_std(x[:1].expand(4, -1, -1, -1), 4)[:, 3], torch.tensor(1e-4))
    assert minibatch_std(x[:3], 2).shape == (3, 4, 2, 2)  # the group shrinks to a divisor of the batch
    torch.manual_seed(0)
    plain, with_std = Discriminator(**TINY).eval(), Discriminator(**TINY, minibatch_std_group=3).eval()  # no SN update
    assert with_std.blocks[-1].conv1.in_channels == plain.blocks[-1].conv1.in_channels + 1
    text, mel = make_text(), make_mel()
    same = mel[:1].expand(BATCH, -1, -1, -1).contiguous()
    with torch.no_grad():
        assert not torch.allclose(with_std(same, text).logit[0], with_std(torch.cat([mel[:1], mel[1:] + 3.0]), text).logit[0])
        assert torch.allclose(plain(same, text).logit[0], plain(torch.cat([mel[:1], mel[1:] + 3.0]), text).logit[0])


def test_time_delta_channel_is_the_frame_to_frame_difference() -> None:
    """model.d_time_delta (issue 19): with the log-mel's own input weights zeroed, D sees only the difference
    channel: two mels steady in time at different levels look the same to it, a mel with one click does not."""
    torch.manual_seed(0)
    discriminator = Discriminator(**TINY, time_delta=True).eval()  # eval: no SN power-iteration update
    first = discriminator.blocks[0]
    with torch.no_grad():
        for conv in (first.conv1, first.skip):
            conv.parametrizations.weight.original[:, 0] = 0.0
    text = make_text()
    steady_low = torch.full((BATCH, 1, N_MELS, N_FRAMES), -8.0)
    steady_high = torch.full((BATCH, 1, N_MELS, N_FRAMES), -2.0)
    click = steady_low.clone()
    click[..., N_FRAMES // 2] = 0.0
    logit = {name: discriminator(mel, text).logit for name, mel in
             (("low", steady_low), ("high", steady_high), ("click", click))}
    assert torch.allclose(logit["low"], logit["high"], atol=1e-5)
    assert not torch.allclose(logit["low"], logit["click"], atol=1e-3)


def test_peak_channel_is_each_bins_maximum_over_the_clip() -> None:
    """model.d_peak (issue 19): the last input channel holds each bin's loudest value at every frame, so one hot
    bin-frame changes D's input at every frame of that bin (a conv D otherwise sees it only where it is); with the
    log-mel's and the difference's input weights zeroed, D still tells two clips apart that differ only in that
    hot spot's height."""
    torch.manual_seed(0)
    discriminator = Discriminator(**TINY, time_delta=True, peak=True).eval()
    assert discriminator.blocks[0].conv1.in_channels == 3
    mel = make_mel()
    channels = discriminator.input_channels(mel)
    assert torch.equal(channels[:, 0], mel[:, 0])
    assert torch.equal(channels[:, 2], mel[:, 0].amax(dim=2, keepdim=True).expand(-1, -1, N_FRAMES))
    quiet = torch.full((BATCH, 1, N_MELS, N_FRAMES), -6.0)
    quiet[:, :, 2, N_FRAMES // 2] = 0.0
    hot = quiet.clone()
    hot[:, :, 2, N_FRAMES // 2] = 4.0
    first, text = discriminator.blocks[0], make_text()
    with torch.no_grad():
        for conv in (first.conv1, first.skip):
            conv.parametrizations.weight.original[:, :2] = 0.0
        assert not torch.allclose(discriminator(quiet, text).logit, discriminator(hot, text).logit, atol=1e-4)
