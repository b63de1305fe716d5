"""PANNs Wavegram-Logmel-CNN14 (Kong et al., 2020), the FAD embedding of DCASE 2024 Task 7.

Written for this project so that the public checkpoint ``Wavegram_Logmel_Cnn14_mAP=0.439.pth``
(Zenodo record 3987831) loads with ``strict=True``: the module tree reproduces the state-dict keys
and shapes of ``Wavegram_Logmel_Cnn14`` in qiuqiangkong/audioset_tagging_cnn ``pytorch/models.py``,
including torchlibrosa's conv-based front end (``spectrogram_extractor.stft.conv_real/conv_imag``:
DFT basis times a periodic Hann window; ``logmel_extractor.melW``: ``librosa.filters.mel(...).T``).
torchlibrosa is not a dependency; both front-end tensors are rebuilt here and then replaced by the
checkpoint's copies, as in the public code.

Front end (public defaults): 32 kHz mono, window 1024, hop 320, centred reflect-padded STFT, power,
64 Slaney mel bins 50-14000 Hz, 10 log10(max(mel, 1e-10)) with ref 1.0 and top_db None.
Inference only: no SpecAugment, mixup or dropout (all are identity in eval mode).

Clip embedding: the 2048-d ``embedding`` output, fc1 + ReLU of (max + mean over time of the
frequency-averaged conv_block6 output). The DCASE 2024 Task 7 fadtk fork
(DCASE2024-Task7-Sound-Scene-Synthesis/fadtk, ``fadtk/model_loader.py``, ``PANNsModel`` variant
``wavegram-logmel``) feeds each whole clip as one batch row and takes ``forward(audio)["embedding"]``,
i.e. this tensor, one vector per clip.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenesynth import paths
from scenesynth.audio_io import waveform
from scenesynth.fetch.download import sha256_file
from scenesynth.pretrained.models import MissingPretrained, fetch_hint
from scenesynth.utils.torch_files import holds_code, holds_code_message, unreadable_detail

__all__ = [
    "DEFAULT_PANNS_CHECKPOINT",
    "EMBEDDING_DIM",
    "MIN_SAMPLES",
    "PANNS_URL",
    "PannsCheckpointError",
    "PannsEmbedding",
    "WavegramLogmelCnn14",
    "count_parameters",
    "load_panns",
    "usable_length",
]

log = logging.getLogger(__name__)

NAME = "panns_wavegram_logmel"  # params.yaml's evaluate.fad_embedding for this network
PUBLISHED_NAME = "panns-wavegram-logmel"  # its folder in the dev set's embeddings.tar.xz (fadtk's model name)
PANNS_CHECKPOINT = "Wavegram_Logmel_Cnn14_mAP=0.439.pth"
PANNS_ZENODO_RECORD = "3987831"
DEFAULT_PANNS_CHECKPOINT = Path(paths.PRETRAINED) / "panns" / PANNS_CHECKPOINT
PANNS_URL = f"https://zenodo.org/records/{PANNS_ZENODO_RECORD}/files/Wavegram_Logmel_Cnn14_mAP%3D0.439.pth"
FETCH_HINT = fetch_hint("panns")

SAMPLE_RATE = 32_000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN = 50.0
FMAX = 14_000.0
AMIN = 1e-10
REF = 1.0
N_CLASSES = 527
EMBEDDING_DIM = 2048
CONV_WIDTHS = (64, 128, 256, 512, 1024, 2048)  # conv_block1..6 output channels
WAVEGRAM_STRIDE = 5  # pre_conv0 stride; three max-pools of 4 follow, 5 * 64 = 320 = HOP
WAVEGRAM_GROUPS = 32  # pre_block3 channels are folded into (channels / 32, time, 32)


class PannsCheckpointError(ValueError):
    """The checkpoint file exists but is not the public Wavegram-Logmel-CNN14 checkpoint."""


def _dft_window_basis() -> tuple[torch.Tensor, torch.Tensor]:
    """torchlibrosa's STFT kernels [n_fft // 2 + 1, 1, n_fft]: Re and Im of exp(-2 pi i n k / N) w[n]."""
    n = np.arange(N_FFT)
    k = np.arange(N_FFT // 2 + 1)
    phase = 2.0 * np.pi * ((np.outer(k, n) % N_FFT) / N_FFT)  # exact reduction keeps float64 accuracy
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann (scipy 'hann', fftbins=True)
    real = np.cos(phase) * window
    imag = -np.sin(phase) * window
    return (torch.from_numpy(real[:, None, :]).float(), torch.from_numpy(imag[:, None, :]).float())


def _mel_matrix() -> torch.Tensor:
    """``librosa.filters.mel(...).T`` [n_fft // 2 + 1, n_mels], torchlibrosa's ``melW``."""
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    return torch.from_numpy(np.ascontiguousarray(mel.T)).float()


class _ConvStft(nn.Module):
    """STFT as two strided Conv1d layers (torchlibrosa ``STFT``), centred with reflect padding."""

    def __init__(self) -> None:
        super().__init__()
        bins = N_FFT // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, kernel_size=N_FFT, stride=HOP, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, kernel_size=N_FFT, stride=HOP, bias=False)
        real, imag = _dft_window_basis()
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)
        self.requires_grad_(False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Power spectrogram [B, 1, frames, n_fft // 2 + 1] of waves [B, samples]."""
        padded = F.pad(wave[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        power = self.conv_real(padded) ** 2 + self.conv_imag(padded) ** 2  # [B, bins, frames]
        return power.transpose(1, 2)[:, None]


class _Spectrogram(nn.Module):
    """Wrapper that exists only so the keys read ``spectrogram_extractor.stft.*``."""

    def __init__(self) -> None:
        super().__init__()
        self.stft = _ConvStft()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.stft(wave)


class _LogmelFilterBank(nn.Module):
    """Mel projection and power_to_db (ref 1.0, amin 1e-10, no top_db), torchlibrosa semantics."""

    def __init__(self) -> None:
        super().__init__()
        self.melW = nn.Parameter(_mel_matrix(), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(power, self.melW)
        return 10.0 * torch.log10(torch.clamp(mel, min=AMIN)) - 10.0 * math.log10(max(AMIN, REF))


class _ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then average pooling (PANNs ``ConvBlock``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class _ConvPreWavBlock(nn.Module):
    """Wavegram block: conv k3, dilated conv k3 (dilation 2), BN + ReLU each, max-pool 4."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, padding=2, dilation=2, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.bn2 = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool1d(x, kernel_size=4)


class WavegramLogmelCnn14(nn.Module):
    """The PANNs network, eval-only. ``width_divisor`` > 1 shrinks conv_block1..6 (and the matching
    pre_block4) for fast tests; the embedding stays 2048-d. Only divisor 1 loads the public file."""

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        if width_divisor < 1 or any(w % width_divisor for w in CONV_WIDTHS):
            raise ValueError(f"width_divisor must divide {CONV_WIDTHS}, got {width_divisor}")
        widths = [w // width_divisor for w in CONV_WIDTHS]
        self.width_divisor = width_divisor
        self.pre_conv0 = nn.Conv1d(1, 64, kernel_size=11, stride=WAVEGRAM_STRIDE, padding=5, bias=False)
        self.pre_bn0 = nn.BatchNorm1d(64)
        self.pre_block1 = _ConvPreWavBlock(64, 64)
        self.pre_block2 = _ConvPreWavBlock(64, 128)
        self.pre_block3 = _ConvPreWavBlock(128, 128)
        self.pre_block4 = _ConvBlock(128 // WAVEGRAM_GROUPS, widths[0])
        self.spectrogram_extractor = _Spectrogram()
        self.logmel_extractor = _LogmelFilterBank()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        self.conv_block1 = _ConvBlock(1, widths[0])
        self.conv_block2 = _ConvBlock(2 * widths[0], widths[1])  # log-mel + wavegram channels
        self.conv_block3 = _ConvBlock(widths[1], widths[2])
        self.conv_block4 = _ConvBlock(widths[2], widths[3])
        self.conv_block5 = _ConvBlock(widths[3], widths[4])
        self.conv_block6 = _ConvBlock(widths[4], widths[5])
        self.fc1 = nn.Linear(widths[5], EMBEDDING_DIM)
        self.fc_audioset = nn.Linear(EMBEDDING_DIM, N_CLASSES)
        self.eval()

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, 1, frames, 64] in dB (before bn0) of waves [B, samples]."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def forward(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"embedding": [B, 2048], "clipwise_output": [B, 527]} for 32 kHz waves [B, samples]."""
        batch = wave.shape[0]
        wavegram = F.relu(self.pre_bn0(self.pre_conv0(wave[:, None, :])))
        wavegram = self.pre_block3(self.pre_block2(self.pre_block1(wavegram)))
        wavegram = wavegram.reshape(batch, -1, WAVEGRAM_GROUPS, wavegram.shape[-1]).transpose(2, 3)
        wavegram = self.pre_block4(wavegram, pool=(2, 1))

        x = self.log_mel(wave).transpose(1, 3)  # bn0 normalises each mel bin
        x = self.bn0(x).transpose(1, 3)
        x = self.conv_block1(x, pool=(2, 2))
        if x.shape[2] != wavegram.shape[2]:
            raise ValueError(
                f"{wave.shape[-1]} samples give {x.shape[2]} log-mel and {wavegram.shape[2]} wavegram "
                f"frames; pad to usable_length({wave.shape[-1]}) = {usable_length(wave.shape[-1])}"
            )
        x = torch.cat((x, wavegram), dim=1)
        for block in (self.conv_block2, self.conv_block3, self.conv_block4, self.conv_block5):
            x = block(x, pool=(2, 2))
        x = self.conv_block6(x, pool=(1, 1))
        x = torch.mean(x, dim=3)  # over frequency
        x = torch.amax(x, dim=2) + torch.mean(x, dim=2)  # over time
        embedding = F.relu(self.fc1(x))
        return {"embedding": embedding, "clipwise_output": torch.sigmoid(self.fc_audioset(embedding))}


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (the frozen STFT/mel tensors count unless ``trainable_only``)."""
    return sum(p.numel() for name, p in model.named_parameters() if not trainable_only or not _is_front_end(name))


def _is_front_end(key: str) -> bool:
    return key.startswith(("spectrogram_extractor.", "logmel_extractor."))


def _logmel_frames(n_samples: int) -> int:
    return 1 + n_samples // HOP  # centred STFT


def _wavegram_frames(n_samples: int) -> int:
    frames = -(-n_samples // WAVEGRAM_STRIDE)  # pre_conv0: k 11, pad 5, stride 5 -> ceil(n / 5)
    for _ in range(3):
        frames //= 4
    return frames


def _accepted(n_samples: int) -> bool:
    """Both branches give the same frames after their first pooling, and four more 2x poolings
    leave at least one frame (reflect padding also needs more than n_fft / 2 samples)."""
    after_pool = _logmel_frames(n_samples) // 2
    return n_samples > N_FFT // 2 and after_pool == _wavegram_frames(n_samples) // 2 and after_pool >= 16


def usable_length(n_samples: int) -> int:
    """Smallest length >= ``n_samples`` the network accepts. The public code just fails on the
    others (torch.cat of unequal frame counts); 4 s DCASE clips (128000 samples) need no padding."""
    length = max(int(n_samples), 1)
    while not _accepted(length):
        length += 1
    return length


MIN_SAMPLES = usable_length(1)  # 10236 samples, 0.32 s


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)``, allowing the numpy arrays of the public file's 'sampler'
    entry (int64 index arrays pickled by numpy 1.x as numpy.core.multiarray._reconstruct)."""
    from numpy._core.multiarray import _reconstruct, scalar

    numpy_data = [
        _reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"),
        scalar, (scalar, "numpy.core.multiarray.scalar"),
        np.ndarray, np.dtype, np.dtypes.Int64DType, np.dtypes.Int32DType,
        np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.BoolDType,
    ]
    with torch.serialization.safe_globals(numpy_data):
        return torch.load(path, map_location="cpu", weights_only=True)


def _state_dict_problems(state: dict, model: nn.Module) -> list[str]:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: {tuple(state[k].shape)} instead of {expected[k]}"
        for k in sorted(set(expected) & set(state))
        if not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != expected[k]
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
            problems.append(f"{label}: {shown}")
    return problems


def _warn_if_front_end_differs(model: WavegramLogmelCnn14, path: Path) -> None:
    """The file's STFT/mel tensors are used as loaded (as in the public code); differing from the
    ones rebuilt here would mean another front end, so say so."""
    real, imag = _dft_window_basis()
    references = {
        "spectrogram_extractor.stft.conv_real.weight": real,
        "spectrogram_extractor.stft.conv_imag.weight": imag,
        "logmel_extractor.melW": _mel_matrix(),
    }
    loaded = model.state_dict()
    for key, reference in references.items():
        error = float((loaded[key].detach().cpu() - reference).abs().max())
        if error > 1e-4 * float(reference.abs().max()):
            log.warning("%s: %s differs from the PANNs front end rebuilt here (max |diff| %.3g)", path, key, error)


def _width_divisor_of(state: dict) -> int | None:
    """How much narrower than the public network a state dict's conv blocks are (1 = the public size)."""
    weight = state.get("conv_block1.conv1.weight")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4 or weight.shape[0] == 0:
        return None
    return CONV_WIDTHS[0] // weight.shape[0] if CONV_WIDTHS[0] % weight.shape[0] == 0 else None


def load_panns(
    checkpoint_path: str | Path = DEFAULT_PANNS_CHECKPOINT, device: str | torch.device = "cpu", *,
    width_divisor: int | None = 1,
) -> WavegramLogmelCnn14:
    """The network with the checkpoint's weights (strict), in eval mode on ``device``, frozen.

    ``width_divisor=None`` takes the width from the file (a narrow random-weight network stands in
    for the public one in end-to-end tests; the FAD record says so, see evaluation/evaluate.py)."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise MissingPretrained(
            f"{path}: PANNs checkpoint not found. It is {PANNS_CHECKPOINT} from Zenodo record "
            f"{PANNS_ZENODO_RECORD} ({PANNS_URL}); {FETCH_HINT}. For the offline demo set "
            "`evaluate.fad_embedding: logmel_stats` (its FAD values are not comparable to the paper's "
            "PANNs numbers)."
        )
    refetch = f"delete it and {FETCH_HINT}"
    try:
        content = _torch_load(path)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        if holds_code(err):
            raise PannsCheckpointError(f"{holds_code_message(path)}; {refetch}") from err
        raise PannsCheckpointError(f"{path}: not a checkpoint readable with torch.load(weights_only=True) "
                                   f"({unreadable_detail(err)}); {refetch}") from err
    if not isinstance(content, dict) or not isinstance(content.get("model"), dict):
        found = sorted(content)[:8] if isinstance(content, dict) else type(content).__name__
        raise PannsCheckpointError(f"{path}: expected a dict whose 'model' entry is the state dict (the "
                                   f"format of Zenodo record {PANNS_ZENODO_RECORD}), found {found}; {refetch}")
    if width_divisor is None:
        width_divisor = _width_divisor_of(content["model"]) or 1
    with torch.device("meta"):  # shapes only: nothing is allocated before the file is known good
        layout = WavegramLogmelCnn14(width_divisor=width_divisor)
    problems = _state_dict_problems(content["model"], layout)
    if problems:
        raise PannsCheckpointError(f"{path}: not a Wavegram_Logmel_Cnn14 state dict ("
                                   + "; ".join(problems) + f"); {refetch}")
    model = WavegramLogmelCnn14(width_divisor=width_divisor)
    model.load_state_dict(content["model"], strict=True)
    _warn_if_front_end_differs(model, path)
    return model.to(device).eval().requires_grad_(False)


class PannsEmbedding:
    """``ClipEmbedding`` for FAD: one 2048-d float64 vector per 32 kHz mono clip."""

    name = NAME
    published_name = PUBLISHED_NAME
    sample_rate = SAMPLE_RATE
    dim = EMBEDDING_DIM

    def __init__(self, checkpoint: str | Path = DEFAULT_PANNS_CHECKPOINT, device: str | torch.device = "cpu",
                 *, width_divisor: int | None = 1, batch_size: int = 16) -> None:
        self.checkpoint = Path(checkpoint)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = load_panns(self.checkpoint, self.device, width_divisor=width_divisor)
        self.width_divisor = self.model.width_divisor

    def identity(self) -> dict:
        """What makes its vectors what they are: the checkpoint's bytes and the network's width."""
        return {"embedding": self.name, "checkpoint_sha256": sha256_file(self.checkpoint),
                "width_divisor": self.width_divisor}

    @staticmethod
    def _prepare(wave: np.ndarray) -> np.ndarray:
        """float32 (the public dtype), zero-padded at the end to a length the network accepts."""
        signal = waveform(wave).astype(np.float32)
        return np.pad(signal, (0, usable_length(signal.shape[0]) - signal.shape[0]))

    def embed_batch(self, waves: list[np.ndarray]) -> np.ndarray:
        """Embeddings [N, 2048] float64. Only clips of equal (padded) length share a batch, so each
        vector equals the one-clip result: padding inside a batch would change max/mean pooling."""
        signals = [self._prepare(w) for w in waves]
        out = np.empty((len(signals), self.dim), dtype=np.float64)
        by_length: dict[int, list[int]] = {}
        for index, signal in enumerate(signals):
            by_length.setdefault(signal.shape[0], []).append(index)
        with torch.inference_mode():
            for indices in by_length.values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    batch = torch.from_numpy(np.stack([signals[i] for i in chunk])).to(self.device)
                    out[chunk] = self.model(batch)["embedding"].double().cpu().numpy()
        return out

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embedding [2048] float64 of one clip at 32 kHz."""
        return self.embed_batch([wave])[0]

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """The network's log-mel input [64, frames] in dB (float64 copy of the float32 front end);
        the clip needs more than 512 samples (reflect padding)."""
        signal = torch.from_numpy(waveform(wave).astype(np.float32))[None].to(self.device)
        with torch.inference_mode():
            return self.model.log_mel(signal)[0, 0].T.double().cpu().numpy()
