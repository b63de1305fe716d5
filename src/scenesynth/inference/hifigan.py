"""The pretrained 48 kHz HiFi-GAN vocoder of AudioLDM 2 / AudioSR: log-mel [256, T] -> 48 kHz audio.

The generator is HiFi-GAN V1 with resblock type 1, laid out as ``Generator`` in
haoheliu/AudioLDM ``audioldm/hifigan/models.py`` (= ``Generator_old`` of AudioLDM 2 and
AudioSR) with their ``get_vocoder_config_48k``: upsample rates [6, 5, 4, 2, 2], kernels
[12, 10, 8, 4, 4], 1536 initial channels, resblock kernels [3, 7, 11, 15], dilations
[1, 3, 5]. Transposed convolutions are padded by (k - u) // 2, so the network emits
T * 480 + 16 samples (the 5x stage adds one); the vocoder keeps the first T * 480. Leaky
ReLU slope 0.1 inside, torch's default 0.01 before ``conv_post``, then tanh.

Three public checkpoint formats load, all strictly (a missing or extra key is an error):

(a) jik876/hifi-gan: ``torch.save({"generator": state_dict})`` with ``config.json`` beside it;
    weight norm stored as ``weight_g``/``weight_v`` (or ``parametrizations.weight.original0/1``
    from newer torch); ``_orig_mod.`` prefixes of torch.compile are dropped;
(b) the AudioLDM 48k / AudioSR latent-diffusion checkpoint ``{"state_dict": ...}``: the vocoder
    sits under ``first_stage_model.vocoder.``, already without weight norm (their ``get_vocoder``
    removes it before the weights are loaded), so keys are plain ``weight``/``bias``;
(c) a Hugging Face ``SpeechT5HifiGan`` folder (transformers; the ``vocoder/`` folder of the
    diffusers AudioLDM pipelines): ``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``,
    ``ups.N`` named ``upsampler.N``, plus the ``mean``/``scale`` input-normalisation buffers.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from scenesynth import paths
from scenesynth.pretrained.models import MissingPretrained, fetch_hint
from scenesynth.utils.torch_files import holds_code, holds_code_message, unreadable_detail

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(paths.PRETRAINED) / "hifigan_48k"
CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.pt"  # format (a), beside config.json
AUDIOLDM_48K_FILE = "audioldm_48k.pth"  # format (b): huggingface.co/haoheliu/audioldm_48k
AUDIOSR_FILE = "pytorch_model.bin"  # format (b): huggingface.co/haoheliu/audiosr_basic
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin",
                   "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")  # format (c)
COMBINED_PREFIX = "first_stage_model.vocoder."
FETCH_HINT = (
    f"To fetch it, {fetch_hint('hifigan_48k')}; the weights "
    "are the 48 kHz HiFi-GAN inside the AudioLDM 2 48k (huggingface.co/haoheliu/audioldm_48k) and AudioSR "
    "(huggingface.co/haoheliu/audiosr_basic) releases, whose licences are partly non-commercial: check them "
    "before use. Offline, set `generate.vocoder: griffin_lim`."
)
_WN_OLD = ("weight_g", "weight_v")
_WN_NEW = ("parametrizations.weight.original0", "parametrizations.weight.original1")


class CheckpointError(ValueError):
    """A vocoder checkpoint exists but is not a loadable 48 kHz HiFi-GAN; the message says why."""


@dataclass(frozen=True)
class HifiGanConfig:
    """Generator hyper-parameters; the defaults are ``get_vocoder_config_48k``."""

    num_mels: int = 256
    sampling_rate: int = 48000
    upsample_rates: tuple[int, ...] = (6, 5, 4, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (12, 10, 8, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11, 15)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 4
    leaky_relu_slope: float = 0.1

    def __post_init__(self) -> None:
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):  # JSON lists -> tuples
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "resblock_dilation_sizes",
                           tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes))
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(f"upsample_initial_channel {self.upsample_initial_channel} is not divisible by "
                             f"2**{len(self.upsample_rates)}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    @classmethod
    def from_jik876(cls, cfg: Mapping[str, Any], source: Path) -> "HifiGanConfig":
        """From a jik876/AudioLDM ``config.json`` (keys num_mels, hop_size, resblock, ...)."""
        if str(cfg.get("resblock", "1")) != "1":
            raise CheckpointError(f"{source}: resblock {cfg['resblock']!r}; only type '1' (HiFi-GAN V1) is supported")
        config = cls._from(cfg, source, num_mels="num_mels")
        if "hop_size" in cfg and int(cfg["hop_size"]) != config.hop_length:
            raise CheckpointError(f"{source}: hop_size {cfg['hop_size']} != product of upsample_rates "
                                  f"{config.hop_length}")
        return config

    @classmethod
    def from_speecht5(cls, cfg: Mapping[str, Any], source: Path) -> "HifiGanConfig":
        """From a Hugging Face ``SpeechT5HifiGanConfig`` ``config.json`` (model_in_dim, ...)."""
        return cls._from(cfg, source, num_mels="model_in_dim")

    @classmethod
    def _from(cls, cfg: Mapping[str, Any], source: Path, num_mels: str) -> "HifiGanConfig":
        names = {f.name for f in fields(cls)} - {"num_mels"}
        needed = ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                  "resblock_kernel_sizes", "resblock_dilation_sizes", num_mels)
        missing = [key for key in needed if key not in cfg]
        if missing:
            raise CheckpointError(f"{source}: config lacks {missing}")
        try:
            return cls(num_mels=int(cfg[num_mels]), **{k: cfg[k] for k in names if k in cfg})
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: invalid HiFi-GAN config: {err}") from err


HIFIGAN_48K = HifiGanConfig()


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs with residuals; ``convs1.M``/``convs2.M`` as in the checkpoints."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                              padding=(kernel_size * d - d) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                                              padding=(kernel_size - 1) // 2) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            x = x + conv2(F.leaky_relu(conv1(F.leaky_relu(x, self.slope)), self.slope))
        return x


class HifiGanGenerator(nn.Module):
    """HiFi-GAN V1: [B, num_mels, T] -> [B, 1, T * hop + extra]; parameter names as the public checkpoints."""

    def __init__(self, config: HifiGanConfig = HIFIGAN_48K, use_weight_norm: bool = False) -> None:
        super().__init__()
        self.config = config
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, c0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2 ** i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            ResBlock1(c0 // 2 ** (i + 1), k, d, config.leaky_relu_slope)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, 1, padding=3)
        if use_weight_norm:
            for conv in self.convolutions():
                weight_norm(conv)  # dim=0, as torch.nn.utils.weight_norm in the public training code

    def convolutions(self) -> Iterator[nn.Module]:
        yield self.conv_pre
        yield from self.ups
        for block in self.resblocks:
            yield from block.convs1
            yield from block.convs2
        yield self.conv_post

    @property
    def has_weight_norm(self) -> bool:
        return parametrize.is_parametrized(self.conv_pre)

    def remove_weight_norm(self) -> None:
        """Fold g * v / ||v|| into plain weights: same output, no per-call normalisation."""
        for conv in self.convolutions():
            if parametrize.is_parametrized(conv, "weight"):
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n_kernels = len(self.config.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, self.config.leaky_relu_slope))
            blocks = self.resblocks[i * n_kernels:(i + 1) * n_kernels]
            summed = blocks[0](x)
            for block in blocks[1:]:
                summed = summed + block(x)
            x = summed / n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # default slope 0.01 here, as the public code


# ------------------------------------------------------------------------------------------ loading
def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``, memory-mapped when the file allows it (multi-GB (b) files)."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as err:
        if not holds_code(err):
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({unreadable_detail(err)})") from err
        raise CheckpointError(
            f"{holds_code_message(path)}. Extract the vocoder once, "
            "in an environment you trust, into format (a): torch.save({'generator': state_dict}) plus its "
            "config.json.") from err
    except Exception as err:  # truncated or not a torch file at all
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err}); "
                              f"delete it and fetch again. {FETCH_HINT}") from err


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable config ({err})") from err


def _is_speecht5_config(cfg: Mapping[str, Any]) -> bool:
    return cfg.get("model_type") == "speecht5_hifigan" or "model_in_dim" in cfg


def _tensors(obj: Any, source: Path, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: {where} is not a mapping of tensors")
    return dict(obj)


def _read_speecht5(folder: Path) -> tuple[HifiGanConfig, dict, Path]:
    config = HifiGanConfig.from_speecht5(_read_json(folder / CONFIG_FILE), folder / CONFIG_FILE)
    weights = next((folder / name for name in HF_WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise MissingPretrained(f"{folder}: config.json names a SpeechT5HifiGan but none of {list(HF_WEIGHT_FILES)} "
                           f"is there. {FETCH_HINT}")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights), device="cpu")
    else:
        state = _tensors(_torch_load(weights), weights, "the file")
    state = {key.replace("upsampler.", "ups.", 1) if key.startswith("upsampler.") else key: value
             for key, value in state.items()}
    return config, state, weights


def _read_torch(path: Path) -> tuple[HifiGanConfig, dict]:
    """Formats (a) and (b), and a bare generator state dict, told apart by their top-level keys."""
    loaded = _torch_load(path)
    if isinstance(loaded, Mapping) and "generator" in loaded:
        state = _tensors(loaded["generator"], path, "'generator'")
    elif isinstance(loaded, Mapping) and "state_dict" in loaded:
        full = _tensors(loaded["state_dict"], path, "'state_dict'")
        state = {key[len(COMBINED_PREFIX):]: value for key, value in full.items() if key.startswith(COMBINED_PREFIX)}
        if not state:
            prefixes = sorted({key.split(".")[0] for key in full})[:10]
            raise CheckpointError(f"{path}: 'state_dict' has no keys under {COMBINED_PREFIX!r} (top-level "
                                  f"modules: {prefixes}); this is not an AudioLDM 48k / AudioSR checkpoint")
    elif isinstance(loaded, Mapping) and any(str(key).startswith(("conv_pre.", "_orig_mod.")) for key in loaded):
        state = _tensors(loaded, path, "the file")
    else:
        keys = list(loaded)[:10] if isinstance(loaded, Mapping) else type(loaded).__name__
        raise CheckpointError(f"{path}: neither {{'generator': ...}} (jik876), {{'state_dict': ...}} "
                              f"(AudioLDM/AudioSR) nor a generator state dict; found {keys}")
    state = {key.replace("_orig_mod.", ""): value for key, value in state.items()}
    config_path = path.parent / CONFIG_FILE
    if config_path.is_file() and not _is_speecht5_config(cfg := _read_json(config_path)):
        config = HifiGanConfig.from_jik876(cfg, config_path)
    else:
        log.info("%s: no jik876 config.json beside it; assuming the 48 kHz layout (get_vocoder_config_48k)", path)
        config = HIFIGAN_48K
    return config, state


def _canonical_weight_norm(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """Old-style ``weight_g``/``weight_v`` -> parametrization names; True if the file is weight-normed."""
    out = {}
    for key, value in state.items():
        for old, new in zip(_WN_OLD, _WN_NEW):
            if key.endswith("." + old):
                key = key[: -len(old)] + new
        out[key] = value
    return out, any(key.endswith(_WN_NEW[0]) for key in out)


def _check_keys(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or extra or wrong:
        raise CheckpointError(
            f"{source}: does not match the HiFi-GAN layout {model.config}; missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {extra[:8]}{' ...' if len(extra) > 8 else ''}, "
            f"wrong shapes {wrong[:4]}. Is it the 48 kHz vocoder? {FETCH_HINT}")


def resolve_checkpoint(path: str | Path) -> Path:
    """The file (or HF folder) to load for ``path``: a checkpoint file, or a folder holding one."""
    path = Path(path)
    if path.is_file() and path.name in HF_WEIGHT_FILES and (path.parent / CONFIG_FILE).is_file():
        if _is_speecht5_config(_read_json(path.parent / CONFIG_FILE)):
            return path.parent  # a weights file of an HF folder: the folder is the checkpoint
    if path.is_file():
        return path
    if path.is_dir():
        config_path = path / CONFIG_FILE
        if config_path.is_file() and _is_speecht5_config(_read_json(config_path)):
            return path
        generators = sorted(path.glob("g_*"))  # jik876 names its checkpoints g_<step>
        for candidate in [path / GENERATOR_FILE, *generators[-1:], path / AUDIOLDM_48K_FILE, path / AUDIOSR_FILE]:
            if candidate.is_file():
                return candidate
        raise MissingPretrained(f"{path}: no vocoder checkpoint in this folder (looked for {GENERATOR_FILE}, g_*, "
                           f"{AUDIOLDM_48K_FILE}, {AUDIOSR_FILE}, or config.json + {HF_WEIGHT_FILES[0]}). "
                           f"{FETCH_HINT}")
    raise MissingPretrained(f"{path}: the 48 kHz HiFi-GAN checkpoint is missing. {FETCH_HINT}")


def load_generator(path: str | Path) -> tuple[HifiGanGenerator, dict[str, torch.Tensor] | None, Path]:
    """Strictly load a checkpoint of any supported format: (generator with weight norm as stored,
    HF input normalisation {'mean', 'scale'} or None, the file read)."""
    source = resolve_checkpoint(path)
    normalisation = None
    if source.is_dir():
        config, state, source = _read_speecht5(source)
        mean, scale = state.pop("mean", None), state.pop("scale", None)
        if mean is None or scale is None:
            raise CheckpointError(f"{source}: SpeechT5HifiGan weights lack the 'mean'/'scale' buffers")
        if _read_json(source.parent / CONFIG_FILE).get("normalize_before", True):
            normalisation = {"mean": mean.float(), "scale": scale.float()}
    else:
        config, state = _read_torch(source)
    state, weight_normed = _canonical_weight_norm(state)
    generator = HifiGanGenerator(config, use_weight_norm=weight_normed)
    _check_keys(generator, state, source)
    generator.load_state_dict({key: value.float() for key, value in state.items()}, strict=True)
    return generator.eval(), normalisation, source


class HifiGanVocoder:
    """Natural-log mel [n_mels, T] or [B, n_mels, T] -> float32 48 kHz waveform(s) of T * hop samples."""

    def __init__(self, generator: HifiGanGenerator, device: torch.device | str = "cpu",
                 normalisation: Mapping[str, torch.Tensor] | None = None, source: Path | None = None,
                 batch_size: int = 4) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.config = generator.config
        self.source = source
        self.batch_size = batch_size
        self.normalisation = ({k: v.to(self.device)[None, :, None] for k, v in normalisation.items()}
                              if normalisation else None)

    sample_rate = property(lambda self: self.config.sampling_rate)
    hop_length = property(lambda self: self.config.hop_length)
    n_mels = property(lambda self: self.config.num_mels)

    def check_front_end(self, settings) -> None:
        """Raise unless the mels come from the front end this vocoder was trained on (docs/paper.md section 1)."""
        pairs = {"sample_rate": (settings.sample_rate, self.sample_rate),
                 "hop_length": (settings.hop_length, self.hop_length), "n_mels": (settings.n_mels, self.n_mels)}
        wrong = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
        if wrong:
            raise ValueError(f"front end and vocoder {self.source} disagree on {wrong} (front end, vocoder)")

    @torch.inference_mode()
    def __call__(self, log_mel: np.ndarray | torch.Tensor) -> np.ndarray:
        mel = torch.as_tensor(log_mel).detach()
        single = mel.dim() == 2
        mel = mel.unsqueeze(0) if single else mel
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[2] == 0:
            raise ValueError(f"expected a log-mel [{self.n_mels}, T] or [B, {self.n_mels}, T], got "
                             f"{tuple(torch.as_tensor(log_mel).shape)}")
        n_samples = mel.shape[2] * self.hop_length
        waves = []
        for batch in mel.split(self.batch_size):
            batch = batch.to(self.device, torch.float32)
            if self.normalisation:
                batch = (batch - self.normalisation["mean"]) / self.normalisation["scale"]
            wave = self.generator(batch)[:, 0]
            if wave.shape[-1] < n_samples:
                raise RuntimeError(f"vocoder gave {wave.shape[-1]} samples for {mel.shape[2]} frames")
            waves.append(wave[:, :n_samples].float().cpu())
        out = torch.cat(waves).numpy()
        return out[0] if single else out


def load_hifigan(path: str | Path = DEFAULT_DIR, device: torch.device | str = "cpu",
                 batch_size: int = 4) -> HifiGanVocoder:
    """Load the 48 kHz vocoder from ``path`` (a checkpoint file or a folder), weight norm folded away."""
    generator, normalisation, source = load_generator(path)
    generator.remove_weight_norm()
    log.info("loaded HiFi-GAN vocoder from %s (%d parameters)", source,
             sum(p.numel() for p in generator.parameters()))
    return HifiGanVocoder(generator, device, normalisation, source, batch_size)
