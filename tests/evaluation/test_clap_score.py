"""The CLAP score: the re-ranker's audio-text cosine per clip, mean and std over seeds."""

import numpy as np
import pytest
import soundfile as sf
import soxr

from scenesynth.evaluation.clap_score import clap_score, not_computed
from scenesynth.inference.rerank import ClapReranker
from scenesynth.pretrained.models import MissingPretrained
from tiny_clap import write_tiny_clap_folder

pytestmark = pytest.mark.usefixtures("single_thread")
CAPTIONS = {"001": "a dog barks with traffic in the background", "002": "a siren wails"}


def test_clap_score_is_the_rerankers_cosine_averaged_per_seed(tmp_path):
    write_tiny_clap_folder(tmp_path / "pretrained/clap_rerank", seed=1)
    sets = {}
    for seed in ("0", "1"):
        sets[seed] = {}
        for index, key in enumerate(CAPTIONS):
            path = tmp_path / f"gen/seed{seed}/{key}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.random.default_rng([int(seed), index]).uniform(-0.4, 0.4, 16_000).astype(np.float32),
                     32_000, subtype="PCM_16")
            sets[seed][key] = path
    record, per_seed = clap_score(tmp_path / "pretrained", "cpu", sets, CAPTIONS)
    reranker = ClapReranker(tmp_path / "pretrained/clap_rerank")
    for seed, clips in sets.items():
        for key, path in clips.items():
            wave48 = soxr.resample(sf.read(path, dtype="float32")[0], 32_000, 48_000, quality="VHQ")
            assert per_seed[seed][key] == pytest.approx(float(reranker.scores(wave48[None], CAPTIONS[key])[0]), abs=1e-6)
    means = [np.mean(list(per_seed[s].values())) for s in ("0", "1")]
    assert record["computed"] and record["model"] == "clap_rerank" and record["n_seeds"] == 2
    assert record["clap_score_mean"] == pytest.approx(np.mean(means))
    assert record["clap_score_std"] == pytest.approx(np.std(means, ddof=1))
    assert record["checkpoint"]["weights_file"] == "pytorch_model.bin"
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name clap_rerank"):
        clap_score(tmp_path / "nothing", "cpu", sets, CAPTIONS)
    assert not_computed("why")["computed"] is False
