"""Every caption of a clip trains: the stream draws one per pass, deterministically and resumably."""

from collections import Counter

import numpy as np

from scenesynth.features.shards import write_shards
from scenesynth.training.data import MelCaptionStream, draw_caption

CAPTIONS = {f"clip{i}": [f"clip {i} caption {j}" for j in range(1 + i % 5)] for i in range(10)}


def write_multi_caption_shards(folder):
    samples = [{"key": key, "mel": np.full((4, 8), i, np.float16),
                "meta": {"caption": captions[0], "captions": captions}}
               for i, (key, captions) in enumerate(CAPTIONS.items())]
    write_shards(samples, folder, shard_size=4)
    return folder


def test_draws_cover_every_caption_evenly_and_depend_on_seed_pass_and_key():
    meta = {"caption": "a", "captions": ["a", "b", "c", "d", "e"]}
    draws = [draw_caption(meta, "clip", seed=3, epoch=e) for e in range(5000)]
    counts = Counter(draws)
    assert set(counts) == set(meta["captions"]) and min(counts.values()) > 900  # 1000 expected each
    assert draws == [draw_caption(meta, "clip", seed=3, epoch=e) for e in range(5000)]
    assert draws != [draw_caption(meta, "clip", seed=4, epoch=e) for e in range(5000)]
    assert draws != [draw_caption(meta, "other", seed=3, epoch=e) for e in range(5000)]
    assert draw_caption({"caption": "only"}, "old-shard", 0, 0) == "only"  # shards written before the list existed


def _passes(stream: MelCaptionStream, n_passes: int) -> list[tuple[float, str]]:
    items = []
    for mel, caption in stream:
        items.append((float(mel[0, 0, 0]), caption))
        if len(items) == n_passes * len(CAPTIONS):
            return items


def test_the_stream_pairs_each_clip_with_its_own_captions_and_resumes_exactly(tmp_path):
    shards = write_multi_caption_shards(tmp_path / "mels")
    items = _passes(MelCaptionStream(shards, seed=7, shuffle_buffer=0), n_passes=20)
    keys = list(CAPTIONS)
    by_clip = {}
    for value, caption in items:
        by_clip.setdefault(keys[int(value)], set()).add(caption)
    assert by_clip == {key: set(captions) for key, captions in CAPTIONS.items()}  # all of them, nothing else
    # a stream re-created at a checkpoint (start_epoch = step) yields what a fresh one at that epoch does
    resumed = _passes(MelCaptionStream(shards, seed=7, shuffle_buffer=3, start_epoch=11), n_passes=2)
    assert resumed == _passes(MelCaptionStream(shards, seed=7, shuffle_buffer=3, start_epoch=11), n_passes=2)
    first_pass = _passes(MelCaptionStream(shards, seed=7, shuffle_buffer=0, start_epoch=11), n_passes=1)
    assert [caption for _, caption in first_pass] == [
        draw_caption({"captions": CAPTIONS[keys[int(value)]]}, keys[int(value)], 7, 11) for value, _ in first_pass]
