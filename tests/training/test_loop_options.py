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


def test_lecam_enters_d_update_keeps_its_anchors_across_a_resume_and_is_off_by_default(tmp_path, tiny_model, tiny_data):
    """loss.lecam: its weight changes D's first update (so G's loss read through it), and its moving anchors are
    part of the checkpoint: 2 steps (tiny.yaml's checkpoint_every), stop, resume to 3 == 3 steps in one go."""
    def run(folder: str, weight: float, steps: int, max_steps: int | None = None) -> dict:
        params = with_overrides(tiny_model["params"], loss={"lecam": weight}, train={"steps": steps})
        return train(params, tiny_data["mels"], tiny_data["text"], tmp_path / folder, tmp_path / f"{folder}.json",
                     max_steps=max_steps)

    light, heavy = run("light", 0.3, 1)["last_losses"], run("heavy", 0.6, 1)["last_losses"]
    assert light["d/lecam"] > 0 and "d/lecam" not in tiny_model["summary"]["last_losses"]
    assert any(light[name] != heavy[name] for name in light if name.startswith("g/"))
    run("straight", 0.3, 3)
    run("resumed", 0.3, 3, max_steps=2)
    anchors = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["lecam_anchors"]
    assert len(anchors) == 2 and all(isinstance(value, float) for value in anchors)
    run("resumed", 0.3, 3)
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["generator"]
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["generator"]
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name


def test_replay_changes_d_fake_batch_keeps_its_reservoir_across_a_resume_and_is_off_by_default(tmp_path, tiny_model,
                                                                                               tiny_data):
    """train.d_replay in training: the reservoir is part of the checkpoint (2 steps, stop, resume to 3 == 3 in
    one go) and absent when it is off (tiny_model)."""
    def run(folder: str, replay: float, steps: int, max_steps: int | None = None) -> dict:
        params = with_overrides(tiny_model["params"], train={"steps": steps, "d_replay": replay, "d_replay_size": 3})
        return train(params, tiny_data["mels"], tiny_data["text"], tmp_path / folder, tmp_path / f"{folder}.json",
                     max_steps=max_steps)

    assert torch.load(tiny_model["run"] / "checkpoints" / "last.pt", weights_only=True)["replay"] is None
    run("straight", 0.5, 3)
    run("resumed", 0.5, 3, max_steps=2)
    replay = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)["replay"]
    assert replay["seen"] > 0 and len(replay["captions"]) == len(replay["mels"]) <= 3
    run("resumed", 0.5, 3)
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["generator"]
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["generator"]
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name


def test_replay_puts_earlier_outputs_with_their_own_captions_in_d_fake_batch_and_the_replaced_rows_in_the_buffer(
        tiny_data):
    """_with_replay: the batch's last round(0.5 x 4) = 2 rows become buffer entries, read with the captions they
    were made for; the 2 rows they replaced are offered to the buffer; with an empty buffer the batch is as it was."""
    from scenesynth.text.cache import TextCache
    from scenesynth.training.loop import ONE_PROCESS, _with_replay
    from scenesynth.training.replay import ReplayBuffer

    cache = TextCache(tiny_data["text"])
    captions = cache.captions[:4]
    state = type("State", (), {"replay": ReplayBuffer(8)})()
    params = {"train": {"d_replay": 0.5}}
    fake, text = torch.arange(4.0).view(4, 1, 1, 1), cache.batch(captions)
    first, first_text = _with_replay(state, fake, captions, text, cache, params, torch.device("cpu"), ONE_PROCESS)
    assert first is fake and first_text is text  # nothing earlier to replay yet
    assert state.replay.captions == captions[2:] and state.replay.mels[:2].flatten().tolist() == [2.0, 3.0]
    later = torch.arange(10.0, 14.0).view(4, 1, 1, 1)
    replayed, replayed_text = _with_replay(state, later, captions[::-1], cache.batch(captions[::-1]), cache, params,
                                           torch.device("cpu"), ONE_PROCESS)
    assert replayed[:2].flatten().tolist() == [10.0, 11.0] and set(replayed[2:].flatten().tolist()) <= {2.0, 3.0}
    own = {2.0: captions[2], 3.0: captions[3]}
    expected = cache.batch(captions[::-1][:2] + [own[float(v)] for v in replayed[2:].flatten()])
    torch.testing.assert_close(replayed_text.sentence, expected.sentence)
    assert len(state.replay) == 4 and state.replay.captions[2:] == captions[::-1][2:]


def test_the_peak_channel_trains_and_its_model_file_rebuilds_a_discriminator_with_it(tmp_path, tiny_model, tiny_data):
    """model.d_peak: one step with D's peak channel beside the onset channel; the model file records it and the
    discriminator rebuilt from the file takes three input channels and loads the trained weights."""
    from scenesynth.inference.protocol import load_model

    params = with_overrides(tiny_model["params"], model={"d_time_delta": True, "d_peak": True, "g_peak_norm": True},
                            train={"steps": 1})
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=1)
    generator, discriminator, saved = load_model(tmp_path / "model.pt", torch.device("cpu"))  # the re-ranker's D
    assert saved["model"]["d_peak"] is True and discriminator.peak
    assert discriminator.blocks[0].conv1.in_channels == 3
    assert saved["model"]["g_peak_norm"] is True and generator.peak_norm


def test_the_peak_cap_trains_and_its_model_file_rebuilds_a_generator_with_it(tmp_path, tiny_model, tiny_data):
    """model.g_peak_cap: one step with G's soft ceiling; the model file records it and the generator rebuilt from it
    caps its output at the level its trained map reads from the sentence."""
    from scenesynth.inference.protocol import load_model
    from scenesynth.text.cache import TextCache

    params = with_overrides(tiny_model["params"], model={"g_peak_cap": True}, train={"steps": 1})
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=1)
    generator, _, saved = load_model(tmp_path / "model.pt", torch.device("cpu"))
    assert saved["model"]["g_peak_cap"] is True and generator.peak_cap and not generator.peak_norm
    assert generator.peak_level.bias.abs().item() > 0  # the level's map took a step
    cache = TextCache(tiny_data["text"])
    text = cache.batch(cache.captions[:2])
    with torch.no_grad():
        generator.output_shift.fill_(20.0)  # every value far above any level the map gives
        levels = generator.peak_level(text.sentence)[:, :, None, None]
        out = generator(torch.randn(2, generator.z_dim), text)
        assert (out <= levels + 1e-5).all() and (out >= levels - 1e-3).all()
