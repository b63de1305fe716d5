import torch

from scenesynth.training.checkpoint import ema_decay_at, make_ema, update_ema


def test_ema_decay_warms_up_to_the_configured_value():
    assert ema_decay_at(0.999, 0) == 0.1
    assert ema_decay_at(0.999, 90) == 0.91
    assert ema_decay_at(0.999, 10**6) == 0.999
    assert all(ema_decay_at(0.999, s) <= ema_decay_at(0.999, s + 1) for s in range(2000))


def test_ema_follows_the_model_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = make_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model[1].running_mean.fill_(7.0)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, model, decay=0.999, step=0)  # decay 0.1 at step 0: 90 % of the way
    for b, p_ema, p in zip(before, ema.parameters(), model.parameters()):
        assert torch.allclose(p_ema, 0.1 * b + 0.9 * p)
    assert torch.all(ema[1].running_mean == 7.0)
