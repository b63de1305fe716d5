"""CLAP audio-text re-ranking of generated candidates (docs/paper.md section 5).

The re-ranker is LAION-CLAP HTSAT-tiny, ``630k-audioset-best.pt``, whose transformers
conversion is ``laion/clap-htsat-unfused`` (LAION-AI/CLAP#123, Ke Chen: "the unfused and
fused models of huggingface transformers come from" 630k-audioset-best.pt and
630k-audioset-fusion-best.pt). Score = cosine similarity of the projected, L2-normalised
audio and text embeddings.

Input preparation follows the checkpoint's own ``preprocessor_config.json`` (truncation
``rand_trunc``, padding ``repeatpad``, 10 s at 48 kHz, 64 log-mel bins 50-14000 Hz):

* longer than 10 s (the 10.24 s candidates): we cut the central 10 s ourselves, so the
  feature extractor's random crop (numpy's global RNG) never runs and scores are repeatable;
* shorter (the 4 s crops): ``repeatpad`` tiles the clip a whole number of times (4 s -> 8 s)
  and pads the rest with zeros, as laion_clap's ``get_audio_features`` does;
* like laion_clap's documented usage, waveforms are clipped to [-1, 1] and quantised to
  16-bit before embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scenesynth.pretrained.clap import load_clap_model, offline_transformers
from scenesynth.pretrained.folder import checkpoint_record, missing_model_files
from scenesynth.pretrained.models import DEFAULT_PRETRAINED_ROOT, MissingPretrained, fetch_hint

SAMPLE_RATE = 48_000
DEFAULT_CLAP_RERANK_DIR = DEFAULT_PRETRAINED_ROOT / "clap_rerank"


def prepare_waves(waves: np.ndarray, max_samples: int) -> np.ndarray:
    """[N, samples] float -> same, centre-cropped to ``max_samples`` and 16-bit quantised."""
    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim != 2:
        raise ValueError(f"waves must be [N, samples] at {SAMPLE_RATE} Hz, got shape {waves.shape}")
    if waves.shape[1] > max_samples:
        start = (waves.shape[1] - max_samples) // 2
        waves = waves[:, start: start + max_samples]
    quantised = np.round(np.clip(waves, -1.0, 1.0) * 32767.0) / 32767.0
    return quantised.astype(np.float32)


class ClapReranker:
    """Scores candidate waveforms against a prompt with LAION-CLAP."""

    def __init__(self, folder: str | Path = DEFAULT_CLAP_RERANK_DIR, device: str = "cpu", batch_size: int = 8):
        folder = Path(folder)
        missing = missing_model_files(folder, need_audio=True) if folder.is_dir() else ["the whole folder"]
        if missing:
            raise MissingPretrained(
                f"{folder}: generate.rerank 'clap' needs the LAION-CLAP HTSAT-tiny checkpoint there "
                f"(laion/clap-htsat-unfused, docs/paper.md section 5) but {', '.join(missing)} is missing; "
                f"{fetch_hint('clap_rerank', folder.parent)}. Offline, set `generate.rerank: discriminator`.")
        transformers = offline_transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.extractor = transformers.ClapFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
        self.model = load_clap_model(folder, device)
        if self.model.config.audio_config.enable_fusion or self.extractor.truncation == "fusion":
            raise MissingPretrained(f"{folder}: a feature-fusion CLAP; the re-ranker expects the unfused "
                               "laion/clap-htsat-unfused (630k-audioset-best)")
        if self.extractor.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"{folder}: the feature extractor expects {self.extractor.sampling_rate} Hz, "
                             f"the re-ranker feeds {SAMPLE_RATE} Hz")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_samples = int(self.extractor.nb_max_samples)
        self.checkpoint = {k: v for k, v in checkpoint_record(folder).items() if k != "folder"}
        self._text: dict[str, torch.Tensor] = {}  # a prompt scores its candidates, then its crops

    @torch.inference_mode()
    def audio_embeddings(self, waves: np.ndarray) -> torch.Tensor:
        """[N, samples] at 48 kHz -> [N, D] unit-norm CLAP audio embeddings, in batches."""
        waves = prepare_waves(waves, self.max_samples)
        out = []
        for start in range(0, len(waves), self.batch_size):
            features = self.extractor(list(waves[start: start + self.batch_size]), sampling_rate=SAMPLE_RATE,
                                      return_tensors="pt")
            pooled = self.model.audio_model(input_features=features["input_features"].float().to(self.device),
                                            is_longer=features["is_longer"].to(self.device)).pooler_output
            out.append(F.normalize(self.model.audio_projection(pooled), dim=-1).float().cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """[D] unit-norm CLAP text embedding (77 tokens at most, as laion_clap tokenizes)."""
        tokens = self.tokenizer([prompt], truncation=True, max_length=77, return_tensors="pt")
        pooled = self.model.text_model(input_ids=tokens["input_ids"].to(self.device),
                                       attention_mask=tokens["attention_mask"].to(self.device)).pooler_output
        return F.normalize(self.model.text_projection(pooled), dim=-1)[0].float().cpu()

    def scores(self, waves: np.ndarray, prompt: str) -> np.ndarray:
        """[N, samples] at 48 kHz and a prompt -> [N] cosine similarities (higher = better match)."""
        if prompt not in self._text:
            self._text[prompt] = self.text_embedding(prompt)
        return (self.audio_embeddings(waves) @ self._text[prompt]).numpy()
