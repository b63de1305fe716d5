"""Who minimises what (docs/paper.md section 4, as XMC-GAN), the loss: config and its schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import torch
import yaml

import scenesynth
import scenesynth.losses.objectives as objectives
from scenesynth.losses import (
    discriminator_objective,
    fake_to_real_loss,
    generator_objective,
    global_to_sentence_loss,
    local_to_word_loss,
    sentence_contrastive_loss,
)

SCHEMA_PATH = Path(scenesynth.__file__).parent / "config" / "schema" / "loss.yaml"
PARAMS_PATH = Path(__file__).resolve().parents[2] / "params.yaml"
CAPTION_IDS = torch.tensor([0, 1, 0, 2])
PAPER = yaml.safe_load(PARAMS_PATH.read_text())["loss"]  # the paper's values: params.yaml is their one home


@dataclass
class FakeDiscriminatorOutput:
    """Stands in for the discriminator's DiscriminatorOutput (same field names)."""

    logit: torch.Tensor
    feature: torch.Tensor
    anchor: torch.Tensor
    proxy: torch.Tensor
    audio_embed: torch.Tensor
    text_embed: torch.Tensor
    regions: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor

    def leaves(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in vars(self).items() if k != "word_mask"}


def make_output(seed: int, batch: int = 4) -> FakeDiscriminatorOutput:
    gen = torch.Generator().manual_seed(seed)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    mask = torch.ones(batch, 5, dtype=torch.bool)
    mask[0, 3:] = False
    return FakeDiscriminatorOutput(
        logit=leaf(batch), feature=leaf(batch, 7), anchor=leaf(batch, 6), proxy=leaf(batch, 6),
        audio_embed=leaf(batch, 6), text_embed=leaf(batch, 6), regions=leaf(batch, 8, 4),
        words=leaf(batch, 5, 4), word_mask=mask,
    )


def loop_hinge_d(real, fake):
    real, fake = real.detach().tolist(), fake.detach().tolist()
    return sum(max(0.0, 1.0 - r) for r in real) / len(real) + sum(max(0.0, 1.0 + f) for f in fake) / len(fake)


def expected_terms(side: str, own, real) -> dict[str, float]:
    """Unweighted terms, computed independently of the objectives module."""
    c = PAPER
    terms = {
        "sc": sentence_contrastive_loss(own.anchor, own.proxy, CAPTION_IDS, c["tau"]),
        "g2s": global_to_sentence_loss(own.audio_embed, own.text_embed, c["tau"]),
        "l2w": local_to_word_loss(own.regions, own.words, own.word_mask, c["gamma1"], c["gamma2"], c["gamma3"]),
    }
    terms = {k: float(v.detach()) for k, v in terms.items()}
    if side == "d":
        terms["hinge"] = loop_hinge_d(real.logit, own.logit_of_fake)
    else:
        terms["hinge"] = -sum(own.logit.detach().tolist()) / len(own.logit)
        terms["f2r"] = float(fake_to_real_loss(own.feature, real.feature, c["tau"]).detach())
    return terms


def test_defaults_give_the_sum_of_all_terms_with_documented_keys():
    real, fake = make_output(0), make_output(1)
    d_total, d_log = discriminator_objective(real, fake, CAPTION_IDS, PAPER)
    g_total, g_log = generator_objective(fake, real, CAPTION_IDS, PAPER)

    d_expected = expected_terms("d", SimpleNamespace(**vars(real), logit_of_fake=fake.logit), real)
    g_expected = expected_terms("g", fake, real)
    assert set(d_log) == {"d/hinge", "d/sc", "d/g2s", "d/l2w", "d/total"}
    assert set(g_log) == {"g/hinge", "g/sc", "g/g2s", "g/l2w", "g/f2r", "g/total"}
    for side, log, expected, total in (("d", d_log, d_expected, d_total), ("g", g_log, g_expected, g_total)):
        assert all(isinstance(v, float) for v in log.values())
        for name, value in expected.items():
            assert log[f"{side}/{name}"] == pytest.approx(value, abs=1e-10)
        assert total.item() == pytest.approx(sum(expected.values()), abs=1e-10)
        assert log[f"{side}/total"] == pytest.approx(total.item(), abs=1e-12)


def test_weights_scale_the_terms_and_the_log_keeps_them_unweighted():
    real, fake = make_output(2), make_output(3)
    weights = {"hinge": 2.0, "sc": 0.5, "f2r": 3.0, "g2s": 0.25, "l2w": 4}
    _, d_unit = discriminator_objective(real, fake, CAPTION_IDS, PAPER)
    _, g_unit = generator_objective(fake, real, CAPTION_IDS, PAPER)
    d_total, d_log = discriminator_objective(real, fake, CAPTION_IDS, {**PAPER, **weights})
    g_total, g_log = generator_objective(fake, real, CAPTION_IDS, {**PAPER, **weights})
    for side, unit_log, log, total in (("d", d_unit, d_log, d_total), ("g", g_unit, g_log, g_total)):
        names = [k.split("/")[1] for k in log if not k.endswith("total")]
        for name in names:
            assert log[f"{side}/{name}"] == pytest.approx(unit_log[f"{side}/{name}"], abs=1e-12)
        assert total.item() == pytest.approx(sum(weights[n] * unit_log[f"{side}/{n}"] for n in names), abs=1e-10)


def test_tau_and_gammas_reach_the_losses():
    real, fake = make_output(4), make_output(5)
    cfg = {**PAPER, "tau": 0.3, "gamma1": 2.0, "gamma2": 1.5, "gamma3": 10.0}
    _, log = generator_objective(fake, real, CAPTION_IDS, cfg)
    with torch.no_grad():
        sc = sentence_contrastive_loss(fake.anchor, fake.proxy, CAPTION_IDS, 0.3)
        f2r = fake_to_real_loss(fake.feature, real.feature, 0.3)
        l2w = local_to_word_loss(fake.regions, fake.words, fake.word_mask, 2.0, 1.5, 10.0)
    assert log["g/sc"] == pytest.approx(sc.item())
    assert log["g/f2r"] == pytest.approx(f2r.item())
    assert log["g/l2w"] == pytest.approx(l2w.item())
    _, default_log = generator_objective(fake, real, CAPTION_IDS, PAPER)
    assert all(log[k] != pytest.approx(default_log[k]) for k in ("g/sc", "g/f2r", "g/g2s", "g/l2w"))


def test_zero_weight_skips_computing_the_term(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a zero-weighted loss was computed")

    for name in ("local_to_word_loss", "sentence_contrastive_loss", "fake_to_real_loss"):
        monkeypatch.setattr(objectives, name, must_not_run)
    cfg = {**PAPER, "sc": 0, "l2w": 0.0, "f2r": 0}
    real, fake = make_output(6), make_output(7)
    # A cheaper discriminator need not even produce the skipped fields (duck typing).
    kept = ("logit", "feature", "audio_embed", "text_embed")
    lean_real = SimpleNamespace(**{name: getattr(real, name) for name in kept})
    lean_fake = SimpleNamespace(**{name: getattr(fake, name) for name in kept})
    _, d_log = discriminator_objective(lean_real, lean_fake, CAPTION_IDS, cfg)
    _, g_log = generator_objective(lean_fake, lean_real, CAPTION_IDS, cfg)
    assert set(d_log) == {"d/hinge", "d/g2s", "d/total"}
    assert set(g_log) == {"g/hinge", "g/g2s", "g/total"}


def test_all_zero_weights_is_an_error():
    real, fake = make_output(8), make_output(9)
    with pytest.raises(ValueError, match="nothing to optimise"):
        discriminator_objective(real, fake, CAPTION_IDS, {**PAPER, "hinge": 0, "sc": 0, "g2s": 0, "l2w": 0})
    # f2r alone is still a generator objective.
    total, log = generator_objective(fake, real, CAPTION_IDS, {**PAPER, "hinge": 0, "sc": 0, "g2s": 0, "l2w": 0})
    assert set(log) == {"g/f2r", "g/total"} and total.item() == pytest.approx(log["g/f2r"])


def grads_of(total, out):
    leaves = out.leaves()
    grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True, retain_graph=True)
    return {name: g is not None and bool(torch.count_nonzero(g)) for name, g in zip(leaves, grads)}


def test_generator_f2r_leaves_the_real_side_without_gradient():
    real, fake = make_output(10), make_output(11)
    total, _ = generator_objective(fake, real, CAPTION_IDS, {**PAPER, "hinge": 0, "sc": 0, "g2s": 0, "l2w": 0})
    total.backward()
    assert real.feature.grad is None
    assert fake.feature.grad is not None and torch.count_nonzero(fake.feature.grad) > 0


def test_each_side_gets_its_own_terms():
    """D: hinge on both logits, contrastive terms on real only. G: everything on fake; real gives nothing."""
    real, fake = make_output(12), make_output(13)
    d_total, _ = discriminator_objective(real, fake, CAPTION_IDS, PAPER)
    assert grads_of(d_total, real) == {name: name != "feature" for name in real.leaves()}  # D has no F2R
    assert grads_of(d_total, fake) == {name: name == "logit" for name in fake.leaves()}
    g_total, _ = generator_objective(fake, real, CAPTION_IDS, PAPER)
    assert all(grads_of(g_total, fake).values())
    assert not any(grads_of(g_total, real).values())


def test_schema_describes_every_key_and_refuses_bad_values():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert set(schema["properties"]) == set(PAPER) == set(schema["required"])
    assert all(p.get("description") and "default" not in p for p in schema["properties"].values())
    validator.validate(PAPER)
    for bad in ({"extra": 1.0}, {"l2W": 0.0}, {"sc": -0.5}, {"tau": 0.0}, {"gamma2": 0}, {"hinge": "1"},
                {"hinge": True}):
        assert not validator.is_valid({**PAPER, **bad}), bad
    assert not validator.is_valid({k: v for k, v in PAPER.items() if k != "tau"})
