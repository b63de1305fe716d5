"""The issue-19 options in the training loop (off in the paper's objective): noise into every generator block,
per-pixel noise maps, minibatch standard deviation in D, the frame-difference channel of D, MSGAN's
mode-seeking term, R1 on D, D's matching-aware term, DiffAugment's time shift, the end-of-training learning-rate
decay. Two tiny steps with all of them on."""

import torch

from conftest import with_overrides
from scenesynth.training.loop import train


def test_two_steps_with_every_diversity_option_on_train_log_and_export_them(tmp_path, tiny_model, tiny_data):
    params = with_overrides(tiny_model["params"], model={"g_noise_blocks": True, "g_noise_maps": "time", "d_minibatch_std": 2,
                                                               "d_time_delta": True},
                            loss={"mode_seeking": 1.0, "mode_seeking_rows": 2, "r1": 1.0, "r1_every": 1, "mismatch": 1.0},
                            train={"d_augment_shift": 0.25, "lr_decay_start": 0.5, "steps": 2})
    summary = train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=2)
    assert summary["steps"] == 2 and summary["last_losses"]["g/mode_seeking"] > 0 and summary["last_losses"]["d/r1"] > 0
    assert summary["last_losses"]["d/mismatch"] > 0
    saved = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    assert saved["model"]["g_noise_blocks"] is True and saved["model"]["d_minibatch_std"] == 2
    assert saved["model"]["g_noise_maps"] == "time" and any("noise_strength" in k for k in saved["generator"])
    assert saved["model"]["d_time_delta"] is True
    assert summary["last_losses"]["lr_scale"] == 0.5  # the last of 2 steps, the only one decaying: halved
    assert "g/mode_seeking" not in tiny_model["summary"]["last_losses"]  # off by default: not computed
    assert "d/r1" not in tiny_model["summary"]["last_losses"]


def test_the_mismatch_term_enters_d_update_and_is_off_by_default(tmp_path, tiny_model, tiny_data):
    """loss.mismatch (GAN-INT-CLS's matching-aware term): its weight changes D's first update, so G's loss read
    through the updated D differs between two weights (both make the same extra D forward, whose spectral-norm
    power iteration alone would change D)."""
    losses = {}
    for weight in (1.0, 2.0):
        params = with_overrides(tiny_model["params"], loss={"mismatch": weight}, train={"steps": 1})
        losses[weight] = train(params, tiny_data["mels"], tiny_data["text"], tmp_path / str(weight),
                               tmp_path / f"{weight}.json", max_steps=1)["last_losses"]
    assert losses[1.0]["d/mismatch"] > 0 and "d/mismatch" not in tiny_model["summary"]["last_losses"]
    g_terms = [name for name in losses[1.0] if name.startswith("g/")]
    assert g_terms and any(losses[1.0][name] != losses[2.0][name] for name in g_terms)
