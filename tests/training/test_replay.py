"""train.d_replay's reservoir of earlier generator outputs (training/replay.py; issue 19)."""

import pytest
import torch

from scenesynth.training.replay import ReplayBuffer, replayed_rows


def mels(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_the_reservoir_keeps_at_most_its_size_and_every_output_offered_is_equally_likely_to_stay():
    torch.manual_seed(0)
    kept = torch.zeros(40)
    for _ in range(500):
        buffer = ReplayBuffer(10)
        for start in range(0, 40, 4):  # 10 steps of 4 rows: early and late outputs
            buffer.offer(mels(range(start, start + 4)), [f"caption {i}" for i in range(start, start + 4)])
        assert len(buffer) == 10 and buffer.seen == 40
        values = buffer.mels[:, 0, 0, 0].long()
        assert [f"caption {v}" for v in values.tolist()] == buffer.captions  # each mel kept with its own caption
        kept[values] += 1
    # each of the 40 is kept with probability 10 / 40: 125 of 500; the first step's as often as the last's
    assert kept[:4].mean() == pytest.approx(125, rel=0.15) and kept[-4:].mean() == pytest.approx(125, rel=0.15)


def test_sample_draws_pairs_from_the_filled_part_and_the_state_round_trips():
    torch.manual_seed(1)
    buffer = ReplayBuffer(8)
    buffer.offer(mels([1.0, 2.0, 3.0]), ["a", "b", "c"])
    old, captions = buffer.sample(6)
    assert old.shape == (6, 1, 1, 1) and set(captions) <= {"a", "b", "c"}
    assert all({1.0: "a", 2.0: "b", 3.0: "c"}[float(v)] == c for v, c in zip(old.flatten(), captions))
    again = ReplayBuffer(8)
    again.load_state_dict(buffer.state_dict(), torch.device("cpu"))
    assert len(again) == 3 and again.seen == 3 and torch.equal(again.mels[:3], buffer.mels[:3])


def test_replayed_rows_rounds_and_leaves_one_current_row():
    assert replayed_rows(0.25, 16) == 4 and replayed_rows(0.0, 16) == 0 and replayed_rows(0.5, 1) == 0
    with pytest.raises(ValueError, match="d_replay_size"):
        ReplayBuffer(0)


def test_a_partly_filled_reservoir_saves_its_filled_rows_only_as_their_own_copy():
    """A view would make torch.save write the whole allocation (unfilled rows included), so checkpoint bytes vary."""
    buffer = ReplayBuffer(8)
    buffer.offer(mels([1.0, 2.0]), ["a", "b"])
    saved = buffer.state_dict()["mels"]
    assert saved.shape[0] == 2 and saved.untyped_storage().nbytes() == saved.numel() * saved.element_size()
    saved.fill_(0.0)
    assert buffer.mels[:2].flatten().tolist() == [1.0, 2.0]
