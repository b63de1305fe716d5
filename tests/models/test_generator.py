"""Generator, its building blocks and build_models (docs/paper.md section 3)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import REPO
from scenesynth.config import ConfigError, deep_merge, load_params, validate_params
from scenesynth.models import Generator, build_models, count_parameters
from scenesynth.models.attention import AttentionStage
from scenesynth.models.generator import PEAK_CAP_SHARPNESS
from scenesynth.models.layers import ConditionalBatchNorm2d, resolution_levels
from scenesynth.text.batch import TextBatch

N_MELS, N_FRAMES, INIT, SENTENCE_DIM, WORD_DIM, Z_DIM = 16, 32, (2, 4), 12, 10, 8
PAPER = load_params(REPO / "params.yaml")
TINY = dict(z_dim=Z_DIM, base_channels=32, n_mels=N_MELS, n_frames=N_FRAMES, sentence_dim=SENTENCE_DIM,
            word_dim=WORD_DIM, heads=2, init_shape=INIT, min_channels=8, attention_impl="tfsca",
            attention_plan=("triple", "double", "single"), output_scale=1.0, output_shift=-4.25)


def make_text(batch: int = 2, n_words: int = 5) -> TextBatch:
    lengths = torch.tensor([3, n_words] * (batch // 2) + [n_words] * (batch % 2))
    mask = torch.arange(n_words)[None, :] < lengths[:, None]
    return TextBatch(torch.randn(batch, SENTENCE_DIM), torch.randn(batch, n_words, WORD_DIM) * mask[..., None],
                     mask, torch.arange(batch))


def open_all_gates(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for stage in module.modules():
            if isinstance(stage, AttentionStage):
                stage.gates.fill_(0.5)


def is_sentence_query_or_key(name: str) -> bool:
    """A2S has one key, so its softmax is constant and these get exactly zero gradient (attention.py)."""
    return ".sentence." in name and any(part in name for part in (".query.", ".queries.", ".tokens.key."))


@pytest.mark.parametrize("impl", ["full", "axial", "tfsca"])
def test_generator_forward_backward_reaches_every_parameter(impl: str) -> None:
    torch.manual_seed(0)
    generator = Generator(**{**TINY, "attention_impl": impl, "attention_plan": ("triple", "double", "single")})
    open_all_gates(generator)
    mel = generator(torch.randn(2, Z_DIM), make_text())
    assert mel.shape == (2, 1, N_MELS, N_FRAMES)
    assert torch.isfinite(mel).all()
    (mel * torch.randn_like(mel)).sum().backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None, name
        if not is_sentence_query_or_key(name):
            assert torch.count_nonzero(parameter.grad) > 0, name


def test_attention_plan_places_stages_by_level() -> None:
    generator = Generator(**{**TINY, "attention_plan": ("triple", None)})
    kinds = [stage.mode if isinstance(stage, AttentionStage) else None for stage in generator.attention]
    assert kinds == ["triple", None, None]
    assert generator.attention[0].mix.out_channels == 16  # level 1: 32 / 2 channels


def test_output_affine_sets_range_and_offset() -> None:
    torch.manual_seed(0)
    generator = Generator(**{**TINY, "attention_plan": (), "output_scale": 0.0, "output_shift": -7.0})
    mel = generator(torch.randn(2, Z_DIM), make_text())
    assert torch.equal(mel, torch.full_like(mel, -7.0))


def test_conditional_batch_norm_is_plain_batch_norm_at_init() -> None:
    torch.manual_seed(0)
    norm = ConditionalBatchNorm2d(4, SENTENCE_DIM)
    x = torch.randn(3, 4, 2, 5)
    expected = torch.nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(norm(x, torch.randn(3, SENTENCE_DIM)), expected)
    with torch.no_grad():
        norm.gain.weight.normal_()
    first, second = norm(x, torch.randn(3, SENTENCE_DIM)), norm(x, torch.randn(3, SENTENCE_DIM))
    assert not torch.allclose(first, second)


@pytest.mark.parametrize(
    ("n_mels", "n_frames", "init_shape"),
    [(16, 48, (2, 4)), (16, 32, (2, 8)), (24, 48, (2, 4)), (16, 32, (3, 4)), (4, 8, (4, 8))],
)
def test_bad_shapes_raise(n_mels: int, n_frames: int, init_shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="power of two|multiple"):
        resolution_levels(n_mels, n_frames, init_shape)
    with pytest.raises(ValueError):
        Generator(**{**TINY, "n_mels": n_mels, "n_frames": n_frames, "init_shape": init_shape})


def test_paper_and_demo_shapes_give_expected_depth() -> None:
    assert resolution_levels(256, 1024, (4, 16)) == 6
    assert resolution_levels(256, 512, (4, 8)) == 6
    assert resolution_levels(N_MELS, N_FRAMES, INIT) == 3


def test_bad_plan_or_noise_raises() -> None:
    with pytest.raises(ValueError, match="attention plan"):
        Generator(**{**TINY, "attention_plan": ("single",) * 4})
    generator = Generator(**{**TINY, "attention_plan": ()})
    with pytest.raises(ValueError, match="z must be"):
        generator(torch.randn(2, Z_DIM + 1), make_text())


def test_params_refuse_unknown_or_mistyped_model_keys() -> None:
    """The model section is validated once, when params are loaded; build_models trusts it."""
    for bad in ({"g_chanels": 64}, {"attention_impl": "sparse"}):
        with pytest.raises(ConfigError):
            validate_params(deep_merge(PAPER, {"model": bad}))
    missing = deep_merge(PAPER, {})
    del missing["model"]["heads"]
    with pytest.raises(ConfigError, match="heads"):
        validate_params(missing)


def test_build_models_tiny_config_runs_end_to_end() -> None:
    torch.manual_seed(0)
    cfg = {**PAPER["model"], "z_dim": Z_DIM, "g_channels": 32, "d_channels": 32, "min_channels": 8,
           "init_shape": list(INIT), "heads": 2, "g_attention": ["double"], "d_attention": ["single", "triple"],
           "proj_dim": 6, "region_dim": 7, "attention_impl": "axial"}
    generator, discriminator = build_models(cfg, N_MELS, N_FRAMES, SENTENCE_DIM, WORD_DIM)
    text = make_text()
    out = discriminator(generator(torch.randn(2, Z_DIM), text), text)
    assert out.logit.shape == (2,)
    assert out.anchor.shape == (2, 6) and out.regions.shape[-1] == 7


def test_paper_size_parameter_counts_without_activations() -> None:
    """Building allocates weights only; no forward pass is run."""
    generator, discriminator = build_models(PAPER["model"], 256, 1024, 512, 768)
    assert len(generator.blocks) == len(discriminator.blocks) == 6
    linear = generator.input.parametrizations.weight.original
    assert tuple(linear.shape) == (1024 * 4 * 16, 128)
    assert count_parameters(generator.input) == (128 + 1) * 1024 * 4 * 16
    assert count_parameters(generator.out_conv) == 32 + 1  # floor of 32 channels at 256 x 1024
    assert discriminator.logit_head.in_features == 1024
    n_generator, n_discriminator = count_parameters(generator), count_parameters(discriminator)
    assert n_generator == sum(count_parameters(child) for child in generator.children()) + 2  # + output affine
    assert 10_000_000 < n_generator < 100_000_000
    assert 10_000_000 < n_discriminator < 100_000_000


def test_noise_blocks_feed_a_chunk_of_z_to_every_block_and_the_default_keeps_the_paper_layout() -> None:
    """model.g_noise_blocks (issue 19): each block's CBN condition is [sentence, its chunk of z], so changing
    only the last block's chunk changes the output; off, z enters the input linear alone."""
    from scenesynth.models.generator import noise_chunks

    assert noise_chunks(8, 3) == [2, 2, 2, 2] and noise_chunks(128, 4) == [28, 25, 25, 25, 25]
    with pytest.raises(ValueError, match="cannot give a chunk"):
        noise_chunks(3, 3)
    torch.manual_seed(0)
    paper = Generator(**TINY)
    assert paper.z_chunks == [Z_DIM] and paper.input.in_features == Z_DIM
    blocks = Generator(**TINY, noise_blocks=True)
    assert blocks.input.in_features == 2 and blocks.blocks[2].norm1.gain.in_features == SENTENCE_DIM + 2
    blocks.eval()
    for module in blocks.modules():  # CBN gains start at 0: give the noise a way in before comparing
        if isinstance(module, ConditionalBatchNorm2d):
            torch.nn.init.normal_(module.gain.weight, std=0.5)
    text, z = make_text(), torch.randn(2, Z_DIM)
    moved = z.clone()
    moved[:, -2:] += 1.0  # the last block's chunk only
    with torch.no_grad():
        assert not torch.allclose(blocks(z, text), blocks(moved, text))


def test_noise_maps_are_a_function_of_z_and_start_silent() -> None:
    """model.g_noise_maps (issue 19): per-pixel noise after every conv, strength 0 at initialisation (the
    output equals the same weights without maps), and drawn from z's bits: the same z gives the same
    clip, a row with another z gets other maps and leaves the other rows alone."""
    torch.manual_seed(0)
    plain = Generator(**TINY).eval()
    torch.manual_seed(0)
    maps = Generator(**TINY, noise_maps="pixel").eval()
    text, z = make_text(3), torch.randn(3, Z_DIM)
    with torch.no_grad():
        assert torch.equal(plain(z, text), maps(z, text))  # strengths start at 0
        for block in maps.blocks:
            torch.nn.init.normal_(block.noise_strength, std=1.0)
        first = maps(z, text)
        assert torch.equal(first, maps(z, text))
        other = z.clone()
        other[2] = torch.randn(Z_DIM)
        changed = maps(other, text)
    assert torch.equal(first[:2], changed[:2]) and not torch.allclose(first[2], changed[2])
    noise = maps.block_noise_maps(z)
    assert [tuple(n.shape) for n in noise] == [(3, 2, INIT[0] << k, INIT[1] << k) for k in range(1, 4)]
    assert 0.8 < noise[-1].std() < 1.2 and plain.block_noise_maps(z) == [None] * 3


def test_time_noise_maps_hold_one_value_per_frame_for_every_bin() -> None:
    """g_noise_maps: time: each block's maps are one row over the frames, broadcast over the bins, so a
    frame's noise moves every bin alike (an onset's shape); an unknown kind is refused."""
    torch.manual_seed(0)
    maps = Generator(**TINY, noise_maps="time", noise_strength=1.0).eval()
    z = torch.randn(2, Z_DIM)
    noise = maps.block_noise_maps(z)
    assert [tuple(n.shape) for n in noise] == [(2, 2, 1, INIT[1] << k) for k in range(1, 4)]
    with torch.no_grad():
        out = maps(z, make_text())
        maps.blocks[-1].noise_strength.zero_()
        assert not torch.allclose(out, maps(z, make_text()))  # the last block's maps reach the output
    with pytest.raises(ValueError, match="noise_maps must be one of"):
        Generator(**TINY, noise_maps="frequency")


def test_input_text_makes_the_first_map_depend_on_the_sentence_and_the_default_does_not() -> None:
    """model.g_input_text (issue 19): at initialisation CBN's maps are zero and the attention gates closed, so the
    text reaches the output only through the input linear: two sentences with one z give two mels with it and the
    same mel without it (the paper's layout: z alone enters the input linear)."""
    torch.manual_seed(0)
    paper = Generator(**TINY).eval()
    torch.manual_seed(0)
    with_text = Generator(**TINY, input_text=True).eval()
    assert paper.input.in_features == Z_DIM and with_text.input.in_features == Z_DIM + SENTENCE_DIM
    z, first, second = torch.randn(2, Z_DIM), make_text(), make_text()
    with torch.no_grad():
        torch.testing.assert_close(paper(z, first), paper(z, second))
        assert (with_text(z, first) - with_text(z, second)).abs().max() > 1e-3


def test_peak_norm_puts_every_clips_loudest_value_at_the_level_its_sentence_gives() -> None:
    """model.g_peak_norm (issue 19): each output's maximum is exactly the sentence's level (0 at initialisation,
    whatever z), below it the clip keeps the shape G made; the level follows the sentence once the map learns."""
    torch.manual_seed(0)
    plain = Generator(**TINY).eval()
    torch.manual_seed(0)
    normed = Generator(**TINY, peak_norm=True).eval()
    z, text = torch.randn(2, Z_DIM), make_text()
    with torch.no_grad():
        before, after = plain(z, text), normed(z, text)
        torch.testing.assert_close(after.amax(dim=(1, 2, 3)), torch.zeros(2))
        torch.testing.assert_close(after, before - before.amax(dim=(2, 3), keepdim=True))
        normed.peak_level.bias.fill_(0.7)
        normed.peak_level.weight.normal_()
        levels = normed.peak_level(text.sentence).squeeze(1)
        torch.testing.assert_close(normed(z, text).amax(dim=(1, 2, 3)), levels)
        assert (levels[0] - levels[1]).abs() > 1e-3


def test_peak_cap_bends_only_the_top_nat_below_the_sentences_level() -> None:
    """model.g_peak_cap (issue 19): a soft ceiling, not a normalisation. Values far below the level pass unchanged
    (a quiet clip stays quiet, unlike peak_norm), values far above it come out at the level, and the level follows
    the sentence once its map learns; it cannot be combined with peak_norm."""
    torch.manual_seed(0)
    plain = Generator(**TINY).eval()
    torch.manual_seed(0)
    capped = Generator(**TINY, peak_cap=True).eval()
    z, text = torch.randn(2, Z_DIM), make_text()
    with torch.no_grad():
        before = plain(z, text)
        assert before.amax() < -2.0  # the output shift puts G's first clips nats below the level 0
        torch.testing.assert_close(capped(z, text), before, atol=1e-4, rtol=0)
        for net in (plain, capped):
            net.output_shift.fill_(6.0)  # now every value is nats above the level
        loud = plain(z, text)
        assert loud.amin() > 2.0
        torch.testing.assert_close(capped(z, text), torch.zeros_like(loud), atol=1e-3, rtol=0)
        # the bend: a value exactly at the level comes out ln(2) / sharpness below it, not at it (a hard min)
        top = plain(z, text).amax()
        for net in (plain, capped):
            net.output_shift.sub_(top)  # the loudest value now exactly at the level 0
        at_level = plain(z, text).flatten().argmax()
        torch.testing.assert_close(capped(z, text).flatten()[at_level], torch.tensor(-math.log(2) / PEAK_CAP_SHARPNESS))
        for net in (plain, capped):
            net.output_shift.add_(top)  # back to every value nats above the level
        capped.peak_level.weight.normal_()
        levels = capped.peak_level(text.sentence).squeeze(1)
        torch.testing.assert_close(capped(z, text).amax(dim=(1, 2, 3)), levels, atol=1e-3, rtol=0)
        assert (levels[0] - levels[1]).abs() > 1e-3
    with pytest.raises(ValueError, match="choose one"):
        Generator(**TINY, peak_norm=True, peak_cap=True)
