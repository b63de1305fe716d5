"""Atomic writes leave either the old file or the new one, and what a kill leaves is swept."""

import os
import signal
import subprocess
import sys

import torch

from scenesynth.utils.atomic import atomic_path, sweep_leftovers, write_torch


def test_a_failed_write_keeps_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    except RuntimeError:
        pass
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_what_a_sigkill_leaves_is_swept_and_nothing_else(tmp_path):
    """A real SIGKILL inside atomic_path leaves its partial file; the sweep removes exactly those."""
    code = ("import os, signal, sys; from scenesynth.utils.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'x' * 1000); os.kill(os.getpid(), signal.SIGKILL)\n")
    shards = tmp_path / "mels"
    shards.mkdir()
    done = subprocess.run([sys.executable, "-c", code, str(shards / "train-000001.tar")], env=os.environ)
    assert done.returncode == -signal.SIGKILL
    (shards / "train-000000.tar").write_bytes(b"complete")
    (shards / ".hidden-user-file").write_text("keep")
    (shards / "train-000002.tar.part").write_text("a resumable download is not ours to delete")
    leftovers = [p.name for p in shards.iterdir() if ".partial-" in p.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".train-000001.tar.partial-")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / ".fad.json.partial-abc.json").write_text("{")
    (metrics / ".train.json.partial-abc.json").write_text("{")
    assert sweep_leftovers(shards, metrics / "fad.json") == 2
    assert sorted(p.name for p in shards.iterdir()) == [".hidden-user-file", "train-000000.tar",
                                                        "train-000002.tar.part"]
    assert [p.name for p in metrics.iterdir()] == [".train.json.partial-abc.json"]  # another stage's file


def test_torch_files_are_byte_identical_for_the_same_object(tmp_path):
    obj = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    write_torch(tmp_path / "a.pt", obj)
    write_torch(tmp_path / "b.pt", obj)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], obj["w"])


def test_a_resumed_optimizer_state_is_written_with_the_bytes_of_a_fresh_one(tmp_path):
    """The state of an optimizer that was loaded from a checkpoint (a resumed run) pickles its string
    keys differently from a fresh one; write_torch must not let that reach the bytes."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    write_torch(tmp_path / "fresh.pt", {"step": 1, "opt": optimizer.state_dict(), "model": model.state_dict()})
    resumed = torch.optim.Adam(model.parameters())
    resumed.load_state_dict(torch.load(tmp_path / "fresh.pt", weights_only=True)["opt"])
    write_torch(tmp_path / "resumed.pt", {"step": 1, "opt": resumed.state_dict(), "model": model.state_dict()})
    assert (tmp_path / "fresh.pt").read_bytes() == (tmp_path / "resumed.pt").read_bytes()
