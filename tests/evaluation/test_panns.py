"""PANNs Wavegram-Logmel-CNN14: public checkpoint layout, loading, embedding and error messages.

The real checkpoint (~330 MB, Zenodo record 3987831) cannot be fetched here, so the tests build
small random-weight files in its exact format ({"iteration", "model": state dict, "sampler": numpy
arrays pickled under numpy 1.x names}) with the conv widths divided by 16, serve them over HTTP and
fetch them with the project's downloader. The full-size layout is checked on the meta device
against a key/shape table written from the public ``Wavegram_Logmel_Cnn14`` source.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math

import librosa
import numpy as np
import pytest
import torch

from signals import relative_distance, tone
from signals import white_noise as noise
from scenesynth.fetch.download import download, sha256_file
from scenesynth.evaluation.embeddings import embed_clips, get_embedding
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.evaluation.panns import (
    MIN_SAMPLES,
    PannsCheckpointError,
    PannsEmbedding,
    WavegramLogmelCnn14,
    count_parameters,
    load_panns,
    usable_length,
)

RATE = 32_000
DIVISOR = 16
NAME = "Wavegram_Logmel_Cnn14_mAP=0.439.pth"

pytestmark = pytest.mark.usefixtures("single_thread")


# --- the public layout, written from audioset_tagging_cnn pytorch/models.py + torchlibrosa stft.py ---

def batch_norm(prefix: str, n: int) -> dict:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
            f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}


def conv_block(prefix: str, cin: int, cout: int) -> dict:  # ConvBlock: two 3x3 Conv2d, no bias
    return {f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.conv2.weight": (cout, cout, 3, 3),
            **batch_norm(f"{prefix}.bn1", cout), **batch_norm(f"{prefix}.bn2", cout)}


def pre_wav_block(prefix: str, cin: int, cout: int) -> dict:  # ConvPreWavBlock: two k3 Conv1d
    return {f"{prefix}.conv1.weight": (cout, cin, 3), f"{prefix}.conv2.weight": (cout, cout, 3),
            **batch_norm(f"{prefix}.bn1", cout), **batch_norm(f"{prefix}.bn2", cout)}


PUBLIC_LAYOUT = {
    "pre_conv0.weight": (64, 1, 11), **batch_norm("pre_bn0", 64),
    **pre_wav_block("pre_block1", 64, 64), **pre_wav_block("pre_block2", 64, 128),
    **pre_wav_block("pre_block3", 128, 128), **conv_block("pre_block4", 4, 64),
    "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "logmel_extractor.melW": (513, 64), **batch_norm("bn0", 64),
    **conv_block("conv_block1", 1, 64), **conv_block("conv_block2", 128, 128),
    **conv_block("conv_block3", 128, 256), **conv_block("conv_block4", 256, 512),
    **conv_block("conv_block5", 512, 1024), **conv_block("conv_block6", 1024, 2048),
    "fc1.weight": (2048, 2048), "fc1.bias": (2048,), "fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,),
}


def test_full_size_module_has_the_public_checkpoint_keys_and_shapes():
    with torch.device("meta"):
        model = WavegramLogmelCnn14()
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == PUBLIC_LAYOUT
    learned = [k for k in PUBLIC_LAYOUT if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    total = sum(math.prod(PUBLIC_LAYOUT[k]) for k in learned)
    front_end = sum(math.prod(PUBLIC_LAYOUT[k]) for k in learned if k.startswith(("spectrogram", "logmel")))
    assert count_parameters(model) == total
    assert count_parameters(model, trainable_only=True) == total - front_end
    # PANNs paper / docs/paper.md section 6: ~81 M learned parameters (+1.08 M frozen STFT and mel tensors).
    assert 80.5e6 < total - front_end < 81.5e6


# --- small random checkpoints in the real file format ---

@contextlib.contextmanager
def numpy1_pickle_names():
    """Pickle numpy arrays as numpy 1.x did (numpy.core.multiarray._reconstruct), like the public file."""
    from numpy._core.multiarray import _reconstruct, scalar

    saved = _reconstruct.__module__, scalar.__module__
    _reconstruct.__module__ = scalar.__module__ = "numpy.core.multiarray"
    try:
        yield
    finally:
        _reconstruct.__module__, scalar.__module__ = saved


def random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """He-normal weights, zero biases, BN near identity: a random network whose embedding still
    depends on the audio (PyTorch's default init makes the 2048-d output nearly constant)."""
    torch.manual_seed(seed)
    model = WavegramLogmelCnn14(width_divisor=DIVISOR)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.startswith(("spectrogram_extractor", "logmel_extractor")):
                continue  # keep the real front end
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.normal_(0.0, math.sqrt(2.0 / module.weight[0].numel()))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.weight.uniform_(0.8, 1.2)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.8, 1.2)
        model.bn0.running_mean.fill_(-30.0)  # log-mel in dB: normalise to O(1) like the trained model
        model.bn0.running_var.fill_(400.0)
    return model.state_dict()


def save_checkpoint(path, state: dict) -> None:
    content = {"iteration": 560000, "model": state,
               "sampler": {"indexes_per_class": [np.arange(7, dtype=np.int64)], "pointer": np.int64(3)}}
    with numpy1_pickle_names():
        torch.save(content, path)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("panns_src") / NAME
    save_checkpoint(path, random_state_dict(seed=0))
    return path


@pytest.fixture(scope="module")
def embedding(small_checkpoint) -> PannsEmbedding:
    return PannsEmbedding(small_checkpoint, width_divisor=DIVISOR)


def test_served_checkpoint_downloads_loads_strictly_and_embeds(tmp_path, static_server, small_checkpoint):
    base_url = static_server(small_checkpoint.parent)
    dest = tmp_path / "pretrained" / NAME
    download(f"{base_url}/Wavegram_Logmel_Cnn14_mAP%3D0.439.pth", dest, sha256=sha256_file(small_checkpoint),
             size=small_checkpoint.stat().st_size, retries=0)
    model = load_panns(dest, width_divisor=DIVISOR)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    reference = torch.load(small_checkpoint, weights_only=False)["model"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)

    fetched = PannsEmbedding(dest, width_divisor=DIVISOR)
    clips = [tone(440.0, 1.0), noise(1.0, seed=1)]
    first, second = (fetched.embed(clip) for clip in clips)
    for vector in (first, second):
        assert vector.shape == (2048,) and vector.dtype == np.float64
        assert np.all(np.isfinite(vector)) and np.any(vector > 0)
    np.testing.assert_array_equal(first, fetched.embed(clips[0]))  # deterministic
    assert relative_distance(first, second) > 0.05  # measured 0.41: different sounds differ
    # Batched (float32 conv reductions in another order): measured max |diff| 4.8e-7.
    np.testing.assert_allclose(fetched.embed_batch(clips), np.stack([first, second]), rtol=1e-4, atol=2e-6)


def test_front_end_matches_librosa(embedding):
    wave = noise(1.0, seed=2) + tone(1000.0, 1.0)
    spectrum = librosa.stft(wave.astype(np.float64), n_fft=1024, hop_length=320, window="hann",
                            center=True, pad_mode="reflect")
    mel = librosa.filters.mel(sr=RATE, n_fft=1024, n_mels=64, fmin=50, fmax=14000) @ np.abs(spectrum) ** 2
    reference_db = 10 * np.log10(np.maximum(mel, 1e-10))
    ours = embedding.log_mel(wave)
    assert ours.shape == reference_db.shape == (64, 1 + RATE // 320)
    # float32 conv STFT vs float64 FFT: measured max |diff| 7.5e-5 dB.
    np.testing.assert_allclose(ours, reference_db, atol=1e-3)


def test_short_and_misaligned_clips_are_zero_padded(embedding):
    assert usable_length(10_560) > 10_560  # 34 log-mel vs 33 wavegram frames: the public code fails
    assert usable_length(128_000) == 128_000  # DCASE 4 s clips are used as they are
    for length in (1000, 10_560):
        clip = noise(length / RATE, seed=3)
        padded = np.pad(clip, (0, usable_length(length) - length))
        vector = embedding.embed(clip)
        assert np.all(np.isfinite(vector))
        np.testing.assert_array_equal(vector, embedding.embed(padded))
    assert usable_length(1) == MIN_SAMPLES == 10_236


def test_usable_length_agrees_with_the_network(embedding):
    """Lengths around the minimum and the 640-sample alignment period: the network runs exactly
    on the lengths ``usable_length`` keeps, and raises on the others."""
    lengths = [*range(9_900, 11_300, 37), 32_000, 33_000, 33_276]
    outcomes = {}
    with torch.inference_mode():
        for length in lengths:
            try:
                embedding.model(torch.zeros(1, length))
                outcomes[length] = True
            except (ValueError, RuntimeError):
                outcomes[length] = False
    assert outcomes == {length: usable_length(length) == length for length in lengths}
    assert sum(outcomes.values()) >= 10 and not all(outcomes.values())


def test_get_embedding_builds_panns_from_the_checkpoint_at_the_width_the_file_has(small_checkpoint):
    built = get_embedding("panns_wavegram_logmel", checkpoint=small_checkpoint)
    assert (built.name, built.sample_rate, built.dim) == ("panns_wavegram_logmel", 32_000, 2048)
    identity = built.identity()  # what the per-clip cache keys on, and what fad.json records
    assert identity["width_divisor"] == DIVISOR == built.width_divisor
    assert identity["checkpoint_sha256"] == hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()
    matrix = embed_clips(built, [tone(440.0, 1.0, rate=16_000), noise(0.5, seed=4)], sample_rate=16_000)
    assert matrix.shape == (2, 2048) and matrix.dtype == np.float64


def test_missing_checkpoint_says_where_it_comes_from(tmp_path):
    missing = tmp_path / "nowhere" / NAME
    for build in (lambda: load_panns(missing), lambda: get_embedding("panns_wavegram_logmel", checkpoint=missing)):
        with pytest.raises(MissingPretrained) as caught:
            build()
        message = str(caught.value)
        for needle in (str(missing), "Zenodo record 3987831", "scenesynth fetch-pretrained --name panns", "fetch_pretrained"):
            assert needle in message


def test_checkpoint_with_a_missing_key_is_rejected_naming_file_and_key(tmp_path):
    state = random_state_dict(seed=1)
    del state["conv_block3.bn2.running_var"]
    path = tmp_path / NAME
    save_checkpoint(path, state)
    with pytest.raises(PannsCheckpointError, match="missing keys: conv_block3.bn2.running_var") as caught:
        load_panns(path, width_divisor=DIVISOR)
    assert str(path) in str(caught.value) and "fetch-pretrained --name panns" in str(caught.value)


def test_full_size_load_of_a_small_checkpoint_reports_wrong_shapes(small_checkpoint):
    with pytest.raises(PannsCheckpointError, match=r"wrong shapes: conv_block1\.bn1\.bias: \(4,\) instead of \(64,\)"):
        load_panns(small_checkpoint)


def test_foreign_files_are_rejected_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"<html>not a checkpoint</html>")
    bare = tmp_path / "bare_state_dict.pth"
    torch.save(random_state_dict(seed=2), bare)  # a state dict without the {"model": ...} wrapper
    for path, problem in ((garbage, "weights_only=True"), (bare, "'model' entry")):
        with pytest.raises(PannsCheckpointError, match=problem) as caught:
            load_panns(path, width_divisor=DIVISOR)
        assert str(path) in str(caught.value)


def test_a_different_front_end_in_the_file_is_reported(tmp_path, caplog):
    state = random_state_dict(seed=3)
    state["logmel_extractor.melW"] = state["logmel_extractor.melW"] * 1.5
    path = tmp_path / NAME
    save_checkpoint(path, state)
    with caplog.at_level(logging.WARNING, logger="scenesynth.evaluation.panns"):
        load_panns(path, width_divisor=DIVISOR)
    assert "logmel_extractor.melW differs" in caplog.text and str(path) in caplog.text
