"""D's replay of earlier generator outputs (``train.d_replay``, off in the paper's training; issue 19).

Why: on the demo a run loses foreground kinds and finds them again in turns, and what a lost kind becomes
is the mel reader's "clock", which is also what it calls a scene with its background alone (docs/benchmarks.md):
the generator drops the foreground event and keeps the background, then relearns it. That is the cycle of a
discriminator that forgets (Liang et al. 2018; Thanh-Tung & Tran 2020): once the generator makes events, D
stops seeing event-free fakes, stops checking for an event, and an event-free scene passes again. SimGAN
(Shrivastava et al., CVPR 2017) keeps D from forgetting by showing it earlier fakes beside the current ones.

Here a fraction of the rows of every D update's fake batch are earlier generator outputs, each read with the
caption it was made for; the buffer is a uniform sample of every output so far (reservoir sampling: its early
outputs stay as likely as its recent ones), refilled with the rows they replaced. Draws use torch's global
generator, and the buffer is part of the checkpoint, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import torch


class ReplayBuffer:
    """At most ``size`` (mel, caption) pairs of earlier generator outputs, a uniform sample of all offered."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"train.d_replay_size must be >= 1, got {size}")
        self.size = size
        self.mels: torch.Tensor | None = None  # [size, 1, n_mels, n_frames], the first len(self) rows filled
        self.captions: list[str] = []
        self.seen = 0  # pairs offered so far (reservoir sampling's count)

    def __len__(self) -> int:
        return len(self.captions)

    def sample(self, rows: int) -> tuple[torch.Tensor, list[str]]:
        """``rows`` pairs drawn uniformly with replacement (global torch generator)."""
        index = torch.randint(len(self), (rows,)).tolist()
        return self.mels[index], [self.captions[i] for i in index]

    def offer(self, mels: torch.Tensor, captions: list[str]) -> None:
        """Reservoir sampling: pair n (0-based) is kept with probability size / (n + 1), in a random slot."""
        mels = mels.detach()
        for mel, caption in zip(mels, captions):
            if len(self) < self.size:
                if self.mels is None:
                    self.mels = mel.new_empty((self.size, *mel.shape))
                self.mels[len(self)] = mel
                self.captions.append(caption)
            else:
                slot = int(torch.randint(self.seen + 1, ()))
                if slot < self.size:
                    self.mels[slot] = mel
                    self.captions[slot] = caption
            self.seen += 1

    def state_dict(self) -> dict:
        return {"size": self.size, "seen": self.seen, "captions": list(self.captions),
                "mels": None if self.mels is None else self.mels[:len(self)].detach().cpu().clone()}  # a copy: a
        # view would save the whole allocation, unfilled rows included, and the checkpoint's bytes would vary

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.seen, self.captions, self.mels = int(state["seen"]), list(state["captions"]), None
        if state["mels"] is not None:
            mels = state["mels"].to(device)
            self.mels = mels.new_empty((self.size, *mels.shape[1:]))
            self.mels[:len(mels)] = mels


def replayed_rows(fraction: float, batch: int) -> int:
    """How many of a fake batch's ``batch`` rows are replayed: round(fraction x batch), at most batch - 1."""
    return min(batch - 1, round(fraction * batch))
