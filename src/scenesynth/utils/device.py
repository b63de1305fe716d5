"""Where the inference stages (generate, evaluate, synthesize, serve) run."""

import re

import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def inference_device(params: dict) -> torch.device:
    """CUDA when there is one, unless train.device pins the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() and params["train"]["device"] != "cpu" else "cpu")


def resolve_device(name: str | torch.device) -> torch.device:
    """A device a user named (auto = CUDA when there is one), checked before any work starts:
    an unknown name or a GPU this machine lacks is a ValueError that says so."""
    if isinstance(name, torch.device):
        return name
    text = str(name).strip().lower()
    if not _DEVICE.match(text):
        raise ValueError(f"unknown device {str(name)[:40]!r}: use {DEVICE_NAMES}")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r}: this machine has no CUDA GPU (torch {torch.__version__}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return device
