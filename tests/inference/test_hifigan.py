"""The 48 kHz HiFi-GAN vocoder: public checkpoint formats, strict loading, output length and range.

Checkpoints are random-weight files in the real layouts (key names, weight-norm tensors made by
torch's own ``weight_norm``), served over HTTP and fetched with the project's downloader. The
full 48 kHz layout is checked on the meta device; everything that runs uses a narrow copy of it
(64 instead of 1536 initial channels) so that a test takes well under a second.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from scenesynth.fetch.download import download
from scenesynth.features.mel import MelSettings
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.inference.hifigan import (
    AUDIOLDM_48K_FILE, COMBINED_PREFIX, CONFIG_FILE, GENERATOR_FILE, HIFIGAN_48K, CheckpointError,
    HifiGanConfig, HifiGanGenerator, load_generator, load_hifigan,
)

TINY = dataclasses.replace(HIFIGAN_48K, upsample_initial_channel=64)
FRAMES = 8


@dataclasses.dataclass
class LightningExtra:
    """Stands in for a pickled non-tensor object (callbacks, hyper-parameters) of a Lightning file."""

    note: str = "trainer state"


def jik876_config(config: HifiGanConfig) -> dict:
    """A config.json as jik876/hifi-gan and AudioLDM write it (get_vocoder_config_48k fields)."""
    return {"resblock": "1", "num_gpus": 8, "batch_size": 128, "learning_rate": 0.0001, "adam_b1": 0.8,
            "adam_b2": 0.99, "lr_decay": 0.999, "seed": 1234, "upsample_rates": list(config.upsample_rates),
            "upsample_kernel_sizes": list(config.upsample_kernel_sizes),
            "upsample_initial_channel": config.upsample_initial_channel,
            "resblock_kernel_sizes": list(config.resblock_kernel_sizes),
            "resblock_dilation_sizes": [list(d) for d in config.resblock_dilation_sizes],
            "segment_size": 15360, "num_mels": config.num_mels, "n_fft": 2048, "hop_size": 480, "win_size": 2048,
            "sampling_rate": 48000, "fmin": 20, "fmax": 24000, "fmax_for_loss": None, "num_workers": 8}


def old_style_weight_norm(model: torch.nn.Module) -> torch.nn.Module:
    """torch.nn.utils.weight_norm on every conv: the weight_g / weight_v layout of the public files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated API, but it is what made the files
        for conv in model.convolutions():
            torch.nn.utils.weight_norm(conv)
    return model


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    """A tiny generator with random weights and torch's old-style weight norm (the training layout)."""
    torch.manual_seed(0)
    model = HifiGanGenerator(TINY).eval()
    return old_style_weight_norm(model)


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    return torch.randn(HIFIGAN_48K.num_mels, FRAMES, generator=torch.Generator().manual_seed(1)) - 4.0


def serve_and_fetch(static_server, folder: Path, names: list[str], dest: Path) -> Path:
    """Serve ``folder`` over HTTP and fetch ``names`` into ``dest`` with the project's downloader."""
    base_url = static_server(folder)
    for name in names:
        download(f"{base_url}/{name}", dest / name, timeout=10, retries=0)
    return dest


def expected_wave(model: torch.nn.Module, mel: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(mel[None])[0, 0, : mel.shape[-1] * 480].numpy()


def test_full_48k_layout_key_names_shapes_and_parameter_count():
    with torch.device("meta"):
        model = HifiGanGenerator(HIFIGAN_48K)
    state = model.state_dict()
    # The names and shapes of the vocoder in the public 48 kHz files (under first_stage_model.vocoder.
    # there; a jik876 file has weight_g / weight_v in place of each weight, see the tests below).
    assert {"conv_pre.weight", "ups.4.weight", "resblocks.19.convs1.2.weight", "resblocks.19.convs2.2.bias",
            "conv_post.weight", "conv_post.bias"} <= set(state)
    assert len(model.resblocks) == 5 * 4 and len(state) == 2 * (1 + 5 + 20 * 6 + 1)
    assert tuple(state["conv_pre.weight"].shape) == (1536, 256, 7)
    assert tuple(state["ups.0.weight"].shape) == (1536, 768, 12)
    assert tuple(state["conv_post.weight"].shape) == (1, 48, 7)

    c = [1536 // 2 ** i for i in range(6)]
    expected = 256 * c[0] * 7 + c[0] + c[5] * 7 + 1
    for i, k in enumerate(HIFIGAN_48K.upsample_kernel_sizes):
        expected += c[i] * c[i + 1] * k + c[i + 1]
        expected += sum(6 * (c[i + 1] ** 2 * kr + c[i + 1]) for kr in HIFIGAN_48K.resblock_kernel_sizes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_jik876_checkpoint_fetched_loads_strictly_and_vocodes(static_server, tmp_path, reference, mel):
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"generator": reference.state_dict()}, served / GENERATOR_FILE)
    (served / CONFIG_FILE).write_text(json.dumps(jik876_config(TINY)))
    folder = serve_and_fetch(static_server, served, [GENERATOR_FILE, CONFIG_FILE], tmp_path / "hifigan_48k")

    vocoder = load_hifigan(folder)
    wave = vocoder(mel.numpy())
    assert wave.shape == (FRAMES * 480,) and wave.dtype == np.float32
    assert np.all(np.isfinite(wave)) and np.abs(wave).max() <= 1.0 and wave.std() > 1e-4
    np.testing.assert_allclose(wave, expected_wave(reference, mel), atol=1e-5)

    batch = vocoder(torch.stack([mel, mel + 1.0, mel - 1.0]).half())  # a float16 stored mel is fine
    assert batch.shape == (3, FRAMES * 480)
    np.testing.assert_allclose(batch[0], vocoder(mel.half()), atol=1e-6)
    vocoder.check_front_end(MelSettings())
    with pytest.raises(ValueError, match="hop_length"):
        vocoder.check_front_end(MelSettings(hop_length=256))
    with pytest.raises(ValueError, match="log-mel"):
        vocoder(mel[:80])


def test_audioldm_combined_checkpoint_yields_only_the_vocoder(static_server, tmp_path, reference, mel):
    """Format (b): AudioLDM 48k / AudioSR keep the vocoder, weight norm already removed, under a prefix."""
    plain = copy.deepcopy(reference)
    for conv in plain.convolutions():
        torch.nn.utils.remove_weight_norm(conv)
    state = {COMBINED_PREFIX + key: value for key, value in plain.state_dict().items()}
    state["first_stage_model.decoder.conv_out.weight"] = torch.zeros(1, 128, 3, 3)
    state["model.diffusion_model.out.2.weight"] = torch.zeros(16, 128, 3, 3)
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": state}, served / AUDIOLDM_48K_FILE)
    (served / CONFIG_FILE).write_text(json.dumps(jik876_config(TINY)))  # the real file is the 48k layout
    folder = serve_and_fetch(static_server, served, [AUDIOLDM_48K_FILE, CONFIG_FILE], tmp_path / "hifigan_48k")

    generator, normalisation, source = load_generator(folder)
    assert source.name == AUDIOLDM_48K_FILE and normalisation is None and not generator.has_weight_norm
    wave = load_hifigan(folder / AUDIOLDM_48K_FILE)(mel)
    np.testing.assert_allclose(wave, expected_wave(reference, mel), atol=1e-5)


@pytest.mark.slow  # importing transformers' SpeechT5 takes a few seconds
def test_speecht5_hifigan_folder_matches_transformers(static_server, tmp_path, mel):
    """Format (c), checked against transformers' own SpeechT5HifiGan forward pass."""
    transformers = pytest.importorskip("transformers")
    config = transformers.SpeechT5HifiGanConfig(
        model_in_dim=256, sampling_rate=48000, upsample_initial_channel=TINY.upsample_initial_channel,
        upsample_rates=list(TINY.upsample_rates), upsample_kernel_sizes=list(TINY.upsample_kernel_sizes),
        resblock_kernel_sizes=list(TINY.resblock_kernel_sizes),
        resblock_dilation_sizes=[list(d) for d in TINY.resblock_dilation_sizes], normalize_before=True)
    torch.manual_seed(2)
    model = transformers.SpeechT5HifiGan(config).eval()
    with torch.no_grad():
        for conv in [model.conv_pre, *model.upsampler, model.conv_post,
                     *(c for block in model.resblocks for c in [*block.convs1, *block.convs2])]:
            conv.weight.normal_(0.0, 1.0 / math.sqrt(conv.weight[0].numel()))
        model.mean.normal_(-4.0, 1.0)
        model.scale.uniform_(1.0, 3.0)
    served = tmp_path / "served"
    model.save_pretrained(served)
    names = sorted(p.name for p in served.iterdir())
    assert "model.safetensors" in names
    folder = serve_and_fetch(static_server, served, names, tmp_path / "vocoder")

    wave = load_hifigan(folder)(mel)
    with torch.no_grad():
        expected = model(mel.T[None])[0, : FRAMES * 480].numpy()
    assert wave.shape == (FRAMES * 480,) and wave.std() > 1e-3
    np.testing.assert_allclose(wave, expected, atol=1e-5)


@pytest.mark.parametrize("edit", ["missing", "extra"])
def test_a_missing_or_extra_key_names_the_file_and_the_key(tmp_path, reference, edit):
    state = dict(reference.state_dict())
    if edit == "missing":
        del state[key := "resblocks.3.convs1.1.weight_g"]
        shown = "resblocks.3.convs1.1.parametrizations.weight.original0"  # the name after mapping
    else:
        state[key := "conv_post.weight_extra"] = torch.zeros(1)
        shown = key
    path = tmp_path / GENERATOR_FILE
    torch.save({"generator": state}, path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(jik876_config(TINY)))
    with pytest.raises(CheckpointError, match=edit if edit == "missing" else "unexpected") as err:
        load_hifigan(path)
    assert str(path) in str(err.value) and shown in str(err.value)


def test_weight_norm_removal_leaves_the_output_unchanged(tmp_path, reference, mel):
    torch.save({"generator": reference.state_dict()}, tmp_path / GENERATOR_FILE)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(jik876_config(TINY)))
    assert tuple(reference.state_dict()["ups.0.weight_g"].shape) == (64, 1, 1)  # dim 0: input channels
    generator, _, _ = load_generator(tmp_path)
    assert generator.has_weight_norm
    with torch.no_grad():
        before = generator(mel[None])
        generator.remove_weight_norm()
        after = generator(mel[None])
    assert not generator.has_weight_norm and set(generator.state_dict()) == set(HifiGanGenerator(TINY).state_dict())
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)


def test_missing_checkpoint_says_where_to_get_it(tmp_path):
    for path in (tmp_path / "absent.pt", tmp_path):
        with pytest.raises(MissingPretrained) as err:
            load_hifigan(path)
        message = str(err.value)
        assert str(path) in message and "fetch-pretrained --name hifigan_48k" in message
        assert "fetch_pretrained" in message and "non-commercial" in message


def test_pickled_extras_are_refused_not_unpickled(tmp_path, reference):
    path = tmp_path / AUDIOLDM_48K_FILE
    state = {COMBINED_PREFIX + key: value for key, value in reference.state_dict().items()}
    torch.save({"state_dict": state, "callbacks": LightningExtra()}, path)
    with pytest.raises(CheckpointError, match="not loaded: it holds pickled Python objects besides weights") as err:
        load_hifigan(path)
    assert str(path) in str(err.value) and "weights_only set to" not in str(err.value)


def test_a_combined_checkpoint_without_the_vocoder_prefix_is_rejected(tmp_path):
    path = tmp_path / AUDIOLDM_48K_FILE
    torch.save({"state_dict": {"model.diffusion_model.out.2.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match=COMBINED_PREFIX):
        load_hifigan(path)
