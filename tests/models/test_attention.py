"""Attention kinds, implementations and stages (docs/paper.md section 3)."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from scenesynth.models.attention import IMPLEMENTATIONS, MODE_KINDS, AttentionStage, build_attention
from scenesynth.models.attention_axial import AxialSelfAttention
from scenesynth.models.attention_full import FullCrossAttention, FullSelfAttention
from scenesynth.models.attention_tfsca import TFSCACrossAttention, TFSCASelfAttention
from scenesynth.text.batch import TextBatch

BATCH, CHANNELS, N_FREQ, N_TIME, N_WORDS, SENTENCE_DIM, WORD_DIM, HEADS = 2, 16, 4, 6, 5, 12, 10, 2
IMPLS = sorted(IMPLEMENTATIONS)
MODES = sorted(MODE_KINDS)


def make_text(seed: int = 0, lengths: tuple[int, ...] = (3, 5)) -> TextBatch:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.arange(N_WORDS)[None, :] < torch.tensor(lengths)[:, None]
    words = torch.randn(len(lengths), N_WORDS, WORD_DIM, generator=generator) * mask[..., None]
    sentence = torch.randn(len(lengths), SENTENCE_DIM, generator=generator)
    return TextBatch(sentence, words, mask, torch.arange(len(lengths)))


def make_map(seed: int = 1, batch: int = BATCH, channels: int = CHANNELS) -> torch.Tensor:
    return torch.randn(batch, channels, N_FREQ, N_TIME, generator=torch.Generator().manual_seed(seed))


def open_gates(stage: AttentionStage, value: float = 0.5) -> AttentionStage:
    with torch.no_grad():
        stage.gates.fill_(value)
    return stage


def weight(projection: torch.nn.Module) -> torch.Tensor:
    """The (spectrally normalised) weight of a Conv1x1 or a linear map."""
    return getattr(projection, "linear", projection).weight.detach()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_stage_output_shape_and_identity_at_init(impl: str, mode: str) -> None:
    torch.manual_seed(0)
    stage = AttentionStage(CHANNELS, mode, impl, SENTENCE_DIM, WORD_DIM, heads=HEADS)
    x, text = make_map(), make_text()
    assert torch.equal(stage(x, text), x)  # gates start at 0: exact identity
    out = open_gates(stage)(x, text)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x)


@pytest.mark.parametrize("impl", IMPLS)
def test_padded_words_are_ignored(impl: str) -> None:
    torch.manual_seed(0)
    stage = open_gates(AttentionStage(CHANNELS, "double", impl, SENTENCE_DIM, WORD_DIM, heads=HEADS)).eval()
    x, text = make_map(), make_text(lengths=(2, 4))
    noisy_words = text.words.clone()
    noisy_words[~text.word_mask] = 100.0 * torch.randn(int((~text.word_mask).sum()), WORD_DIM)
    noisy = TextBatch(text.sentence, noisy_words, text.word_mask, text.caption_ids)
    torch.testing.assert_close(stage(x, noisy), stage(x, text))
    changed_real = text.words.clone()
    changed_real[0, 0] += 1.0
    real = TextBatch(text.sentence, changed_real, text.word_mask, text.caption_ids)
    assert not torch.allclose(stage(x, real)[0], stage(x, text)[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_caption_without_words_gives_zero_and_no_nan(impl: str) -> None:
    torch.manual_seed(0)
    module = build_attention("word", impl, CHANNELS, HEADS, SENTENCE_DIM, WORD_DIM).eval()
    text = make_text(lengths=(0, 3))
    out = module(make_map(), text.words, text.word_mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert out[1].abs().sum() > 0


def test_tfsca_cross_matches_explicit_f_t_l_reference() -> None:
    torch.manual_seed(0)
    module = TFSCACrossAttention(CHANNELS, WORD_DIM, heads=HEADS).eval()
    x, text = make_map(), make_text()
    out = module(x, text.words, text.word_mask)

    dk = module.key_dim
    dv = CHANNELS // HEADS
    q_f = torch.einsum("oc,bcf->bof", weight(module.queries.freq), x.mean(3)).view(BATCH, HEADS, dk, N_FREQ)
    q_t = torch.einsum("oc,bct->bot", weight(module.queries.time), x.mean(2)).view(BATCH, HEADS, dk, N_TIME)
    keys = torch.einsum("od,bld->bol", weight(module.tokens.key), text.words).view(BATCH, HEADS, dk, N_WORDS)
    values = torch.einsum("od,bld->bol", weight(module.tokens.value), text.words).view(BATCH, HEADS, dv, N_WORDS)
    pad = ~text.word_mask[:, None, None, :]
    attn_f = torch.softmax((torch.einsum("bhdf,bhdl->bhfl", q_f, keys) / math.sqrt(dk)).masked_fill(pad, -math.inf), -1)
    attn_t = torch.softmax((torch.einsum("bhdt,bhdl->bhtl", q_t, keys) / math.sqrt(dk)).masked_fill(pad, -math.inf), -1)
    weights_ftl = attn_f[:, :, :, None, :] + attn_t[:, :, None, :, :]  # the explicit [B, h, F, T, L] form
    reference = torch.einsum("bhftl,bhcl->bhcft", weights_ftl, values).reshape(BATCH, CHANNELS, N_FREQ, N_TIME)
    torch.testing.assert_close(out, reference)


def test_tfsca_self_matches_loop_reference_of_spec_formula() -> None:
    torch.manual_seed(0)
    module = TFSCASelfAttention(CHANNELS, heads=HEADS).eval()
    x = make_map()
    out = module(x)

    dk, dv = module.key_dim, CHANNELS // HEADS
    wq_f, wq_t = weight(module.queries.freq), weight(module.queries.time)
    wk_f, wk_t = weight(module.keys.freq), weight(module.keys.time)
    wv = weight(module.value)
    reference = torch.zeros_like(x)
    for b in range(BATCH):
        x_f, x_t = x[b].mean(2), x[b].mean(1)  # [C, F], [C, T]
        value_map = torch.einsum("oc,cft->oft", wv, x[b])
        for h in range(HEADS):
            rows = slice(h * dk, (h + 1) * dk)
            a_ft = torch.softmax((wq_f[rows] @ x_f).T @ (wk_t[rows] @ x_t) / math.sqrt(dk), dim=1)  # [F, T]
            a_tf = torch.softmax((wq_t[rows] @ x_t).T @ (wk_f[rows] @ x_f) / math.sqrt(dk), dim=1)  # [T, F]
            for f in range(N_FREQ):
                for t in range(N_TIME):
                    w_ft = a_ft[f, t] + a_tf[t, f]
                    channels = slice(h * dv, (h + 1) * dv)
                    reference[b, channels, f, t] = w_ft * value_map[channels, f, t]
    torch.testing.assert_close(out, reference)


def test_full_self_matches_scaled_dot_product_attention() -> None:
    torch.manual_seed(0)
    module = FullSelfAttention(CHANNELS, heads=HEADS).eval()
    x = make_map()
    flat = x.flatten(2)  # [B, C, N]
    dk = module.key_dim

    def heads_first(w: torch.Tensor, d: int) -> torch.Tensor:
        return torch.einsum("oc,bcn->bon", w, flat).view(BATCH, HEADS, d, -1).transpose(-1, -2)

    q, k = heads_first(weight(module.query), dk), heads_first(weight(module.key), dk)
    v = heads_first(weight(module.value), CHANNELS // HEADS)
    reference = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape_as(x)
    torch.testing.assert_close(module(x), reference)


def test_axial_self_matches_loop_reference() -> None:
    torch.manual_seed(0)
    module = AxialSelfAttention(CHANNELS, heads=1).eval()
    x = make_map(batch=1)[0]
    dk = module.key_dim
    x_f, x_t = x.mean(2), x.mean(1)
    a_t = torch.softmax((weight(module.queries.time) @ x_t).T @ (weight(module.keys.time) @ x_t) / math.sqrt(dk), 1)
    a_f = torch.softmax((weight(module.queries.freq) @ x_f).T @ (weight(module.keys.freq) @ x_f) / math.sqrt(dk), 1)
    values = torch.einsum("oc,cft->oft", weight(module.value), x)
    reference = torch.zeros_like(x)
    for f in range(N_FREQ):
        for t in range(N_TIME):
            reference[:, f, t] = values[:, f, :] @ a_t[t] + values[:, :, t] @ a_f[f]
    torch.testing.assert_close(module(x[None])[0], reference)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_reach_every_parameter(impl: str) -> None:
    torch.manual_seed(0)
    stage = open_gates(AttentionStage(CHANNELS, "triple", impl, SENTENCE_DIM, WORD_DIM, heads=HEADS))
    out = stage(make_map(), make_text())
    (out * torch.randn_like(out)).sum().backward()
    for name, parameter in stage.named_parameters():
        assert parameter.grad is not None, name
        if name.startswith("attentions.sentence.") and (".query." in name or "tokens.key" in name or "queries." in name):
            # One sentence token: softmax over L = 1 is constant, so A2S's query/key get exactly zero gradient.
            assert torch.count_nonzero(parameter.grad) == 0, name
        else:
            assert torch.count_nonzero(parameter.grad) > 0, name


def largest_saved_tensor(fn) -> int:
    """numel of the largest tensor autograd keeps for backward while running fn()."""
    sizes: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return max(sizes)


def test_tfsca_never_builds_the_large_attention_tensors() -> None:
    torch.manual_seed(0)
    channels, heads, n_tokens = 4, 1, 40  # an F x T x L tensor would dwarf the map and the tokens
    x = make_map(batch=1, channels=channels).requires_grad_()
    tokens, mask = torch.randn(1, n_tokens, WORD_DIM), torch.ones(1, n_tokens, dtype=torch.bool)
    grid = N_FREQ * N_TIME
    cross_tfsca = TFSCACrossAttention(channels, WORD_DIM, heads)
    cross_full = FullCrossAttention(channels, WORD_DIM, heads)
    assert largest_saved_tensor(lambda: cross_tfsca(x, tokens, mask)) < grid * n_tokens
    assert largest_saved_tensor(lambda: cross_full(x, tokens, mask)) >= grid * n_tokens
    self_tfsca, self_full = TFSCASelfAttention(channels, heads), FullSelfAttention(channels, heads)
    assert largest_saved_tensor(lambda: self_tfsca(x)) < grid * grid
    assert largest_saved_tensor(lambda: self_full(x)) >= grid * grid


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="multiple of heads"):
        AttentionStage(10, "single", "tfsca", SENTENCE_DIM, WORD_DIM, heads=4)
    with pytest.raises(ValueError, match="mode"):
        AttentionStage(CHANNELS, "quadruple", "tfsca", SENTENCE_DIM, WORD_DIM)
    with pytest.raises(ValueError, match="implementation"):
        AttentionStage(CHANNELS, "single", "linear", SENTENCE_DIM, WORD_DIM)
    with pytest.raises(ValueError, match="text"):
        AttentionStage(CHANNELS, "double", "full", SENTENCE_DIM, WORD_DIM)(make_map())


def test_benchmark_smoke_json_and_skip(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/attention.py runs, prints the documented JSON keys and skips `full` above the limit."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "attention.py"
    spec = importlib.util.spec_from_file_location("attention_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--json", "--sizes", "8x32", "--kinds", "word", "--repeats", "1",
                           "--full-limit-gib", "1e-6"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["impl"] for row in rows] == ["full", "axial", "tfsca"]
    for row in rows:
        assert set(row) == {"impl", "kind", "F", "T", "peak_bytes", "ms"}
        assert (row["kind"], row["F"], row["T"]) == ("word", 8, 32)
    assert rows[0]["peak_bytes"] is None and rows[0]["ms"] is None  # full skipped by the tiny limit
    assert all(row["peak_bytes"] > 0 and row["ms"] > 0 for row in rows[1:])
