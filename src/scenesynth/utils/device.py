"""Where the inference stages (generate, evaluate) run."""

import torch


def inference_device(params: dict) -> torch.device:
    """CUDA when there is one, unless train.device pins the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() and params["train"]["device"] != "cpu" else "cpu")
