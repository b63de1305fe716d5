"""Training in several processes (DDP, gloo on CPU) against the single-process run.

Tolerance: the ranks agree bit for bit. The discriminator agrees with the single process to 1e-4
(7e-7 after 2 steps, 2.5e-5 after 4, once the generator's noise below has reached its inputs; a
wrong global batch, BatchNorm or gather moves it by about lr_d per step, 1e-3 here). The generator agrees
to 2 x lr_g x steps: many of its gradients are float noise in practice (conv biases feed BatchNorms
that cancel them; with ``text.mask_eos`` the tiny hash captions leave some conditional-norm gains and
conv weights near zero gradient too), and Adam normalises that noise into steps of about +-lr whose
sign depends on the summation order, which differs between 1 and 2 processes. A generator whose
gradients were not synchronised would fail the bit-for-bit check between ranks instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.parallel  # noqa: F401  (imported once here, not in every forked rank)
import yaml

from conftest import REPO, TINY_OVERLAY, venv_env, with_overrides
from scenesynth.config import load_params
from scenesynth.losses.contrastive import global_to_sentence_loss
from scenesynth.training import loop
from scenesynth.training.data import MelCaptionStream, batch_stream, splits_by_shard
from scenesynth.training.distributed import (DistContext, check_replicas_identical, convert_batch_norms, gather_rows,
                                             stop, wrap)
from scenesynth.training.launch import local_batch_size, torchrun_command
from scenesynth.training.stop_signals import RESUMABLE_EXIT

STEPS, HALF = 4, 2  # tiny: a checkpoint (and a fresh batch stream) every 2 steps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(fn, *args, world_size: int = 2) -> None:
    """Run fn(rank, *args) in `world_size` forked processes that form a gloo process group."""
    port = free_port()
    mp.start_processes(_as_rank, args=(fn, world_size, port, args), nprocs=world_size, start_method="fork")


def _as_rank(rank, fn, world_size, port, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    fn(rank, *args)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def assert_matches_one_process(saved: dict, reference: dict, params: dict) -> dict[str, float]:
    assert saved["step"] == reference["step"]
    diffs = {part: max_difference(saved[part], reference[part])
             for part in ("generator", "generator_ema", "discriminator")}
    generator_tolerance = 2 * params["train"]["lr_g"] * reference["step"]
    assert diffs["discriminator"] < 1e-4, diffs
    assert diffs["generator"] < generator_tolerance and diffs["generator_ema"] < generator_tolerance, diffs
    return diffs


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, tiny_params, tiny_data) -> str:
    """All tiny clips in one shard: fewer shards than ranks, so every rank reads the global stream
    and keeps its rows of each global batch: the 1- and 2-process runs see the same batches."""
    from scenesynth.features.mel_shards import build_mel_shards

    out = tmp_path_factory.mktemp("one_shard")
    build_mel_shards(with_overrides(tiny_params, mel={"shard_size": 1000}), tiny_data["audio48k"], out, workers=1)
    return str(out)


@pytest.fixture(scope="module")
def settings(tmp_path_factory, mlflow_uri) -> dict:
    """Tiny params, 2 processes per node."""
    overlay = yaml.safe_load(TINY_OVERLAY.read_text())
    overlay["train"].update(steps=STEPS, checkpoint_every=HALF, processes_per_node=2, eval_every=0)  # no dev set
    overlay["mlflow"] = {"tracking_uri": mlflow_uri, "experiment": "distributed"}
    path = tmp_path_factory.mktemp("overlay") / "two_processes.yaml"
    path.write_text(yaml.safe_dump(overlay))
    two = load_params(REPO / "params.yaml", path)
    return {"overlay": path, "two": two, "one": with_overrides(two, train={"processes_per_node": 1})}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, settings, one_shard, tiny_data) -> dict:
    """The single-process run: its checkpoints at steps 2 and 4 (resuming is bit-identical)."""
    run = tmp_path_factory.mktemp("reference")
    out = {"checkpoint_half": run / "half.pt"}
    for steps in (HALF, STEPS):
        out[f"summary{steps}"] = loop.train(settings["one"], one_shard, tiny_data["text"], run, run / "m.json", steps)
        out[steps] = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        if steps == HALF:
            shutil.copy(run / "checkpoints" / "last.pt", out["checkpoint_half"])
    return out


def _train_and_dump(rank, params, shards, text, run, dumps):
    real_check = loop.check_replicas_identical

    def dump_then_check(modules, ctx):
        torch.save({k: m.state_dict() for k, m in modules.items()}, dumps / f"rank{rank}.pt")
        real_check(modules, ctx)

    loop.check_replicas_identical = dump_then_check
    loop.train(params, shards, text, run, run / "m.json", max_steps=HALF)


def test_two_processes_keep_identical_weights_match_one_process_and_resume_in_one(tmp_path, settings, one_shard,
                                                                                  tiny_data, reference):
    run, dumps = tmp_path / "run", tmp_path / "dumps"
    dumps.mkdir()
    started = time.perf_counter()
    params = with_overrides(settings["two"], mlflow={"experiment": "two-ranks"})
    run_ranks(_train_and_dump, params, one_shard, tiny_data["text"], run, dumps)
    print(f"2 ranks, {HALF} steps: {time.perf_counter() - started:.1f} s")
    rank0, rank1 = (torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for module in rank0:
        for key in rank0[module]:
            assert torch.equal(rank0[module][key], rank1[module][key]), f"{module}.{key}"
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["world_size"] == 2
    print(f"max |2 processes - 1 process| after {HALF} steps:",
          assert_matches_one_process(saved, reference[HALF], settings["one"]))
    summary = json.loads((run / "m.json").read_text())
    assert summary["processes"] == 2
    for name, value in reference[f"summary{HALF}"]["last_losses"].items():
        assert summary["last_losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    import mlflow

    mlflow.set_tracking_uri(params["mlflow"]["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=["two-ranks"])
    assert list(runs["run_id"]) == [json.loads((run / "mlflow_run.json").read_text())["run_id"]]  # rank 0 alone logs
    assert len(list((run / "samples").glob("*.wav"))) == 1
    one_process = with_overrides(params, train={"processes_per_node": 1})
    summary = loop.train(one_process, one_shard, tiny_data["text"], run, run / "m.json")  # 2 -> 1 process
    assert summary["steps_this_run"] == STEPS - HALF and summary["processes"] == 1
    print(f"max |2->1 processes - 1 process| after {STEPS} steps:", assert_matches_one_process(
        torch.load(run / "checkpoints" / "last.pt", weights_only=True), reference[STEPS], settings["one"]))


def test_cli_launches_two_processes_that_resume_a_one_process_checkpoint(tmp_path, settings, one_shard, tiny_data,
                                                                          reference):
    """`scenesynth train` re-runs itself under torchrun, resumes the 1-process checkpoint of step 2
    and trains to step 4; the result matches the single-process run."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(reference["checkpoint_half"], run / "checkpoints" / "last.pt")
    cmd = [sys.executable, "-m", "scenesynth.cli", "train", "--params", str(REPO / "params.yaml"),
           "--overlay", str(settings["overlay"]), "--shards", one_shard, "--text", str(tiny_data["text"]),
           "--out", str(run), "--metrics", str(run / "m.json")]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=venv_env(), capture_output=True, text=True, timeout=300)
    print(f"scenesynth train in 2 processes, {STEPS - HALF} steps: {time.perf_counter() - started:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch.distributed.run --nproc-per-node 2" in done.stderr
    assert f"at step {HALF} (written by 1 process(es))" in done.stderr
    assert "identical on all 2 ranks (bit-exact)" in done.stderr
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["world_size"] == 2 and json.loads((run / "timing.json").read_text())["steps_this_run"] == STEPS - HALF
    print(f"max |1->2 processes - 1 process| after {STEPS} steps:",
          assert_matches_one_process(saved, reference[STEPS], settings["one"]))


def _gradients_on_rank(rank, out_dir):
    """Conv -> BatchNorm -> pooled embedding -> a contrastive loss over the batch, in DDP."""
    dist.init_process_group("gloo")
    ctx = DistContext(rank=rank, world_size=2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 6))
    x, text = torch.randn(8, 1, 6, 6), torch.randn(8, 6)
    model = wrap(convert_batch_norms(net), ctx)
    rows = ctx.rows(8)
    loss = global_to_sentence_loss(gather_rows(model(x[rows]), ctx), text, 0.1)
    loss.backward()
    torch.save({"grads": {n: p.grad for n, p in net.named_parameters()}, "running": net[1].running_var,
                "loss": loss.detach()}, out_dir / f"rank{rank}.pt")
    del model, loss
    stop(ctx)


def test_gathered_loss_and_cross_rank_batch_norm_give_the_one_process_gradient(tmp_path):
    run_ranks(_gradients_on_rank, tmp_path)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 6))
    x, text = torch.randn(8, 1, 6, 6), torch.randn(8, 6)
    loss = global_to_sentence_loss(net(x), text, 0.1)
    loss.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.allclose(got["loss"], loss.detach(), atol=1e-6)
        assert torch.allclose(got["running"], net[1].running_var, atol=1e-6)
        for name, param in net.named_parameters():
            assert torch.allclose(got["grads"][name], param.grad, atol=1e-6), name


@dataclasses.dataclass
class TwoHeads:
    used: torch.Tensor
    unused: torch.Tensor


class TwoHeadNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)

    def forward(self, x):
        return TwoHeads(self.used(x), self.unused(x))


def _unused_head_on_rank(rank, out_dir):
    dist.init_process_group("gloo")
    ctx = DistContext(rank=rank, world_size=2)
    model = wrap(TwoHeadNet(), ctx)
    for _ in range(2):  # DDP reports a missing gradient at the next forward
        out = model(torch.randn(4, 3))
        loop._every_output_in_graph(out.used.sum(), out).backward()
    (out_dir / f"rank{rank}.txt").write_text(str(model.module.unused.weight.grad.abs().sum().item()))
    del model, out
    stop(ctx)


def test_heads_without_a_loss_term_get_a_zero_gradient_under_ddp(tmp_path):
    """A loss weight of 0 leaves a head of D out of the loss; DDP needs a gradient for it all the same."""
    run_ranks(_unused_head_on_rank, tmp_path)
    assert [float((tmp_path / f"rank{r}.txt").read_text()) for r in (0, 1)] == [0.0, 0.0]


def _diverge_on_rank(rank, out_dir):
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    if rank == 1:
        model.bias.data[0] = 1e-7
    try:
        check_replicas_identical({"generator": model}, DistContext(rank=rank, world_size=2))
        message = "no error"
    except RuntimeError as err:
        message = str(err)
    (out_dir / f"rank{rank}.txt").write_text(message)
    dist.destroy_process_group()


def test_replica_check_names_the_tensor_that_differs(tmp_path):
    run_ranks(_diverge_on_rank, tmp_path)
    assert "generator.bias" in (tmp_path / "rank1.txt").read_text()
    assert "diverged: 1 tensors over all ranks" in (tmp_path / "rank0.txt").read_text()


def test_each_rank_reads_its_own_shards_or_its_rows_of_the_global_batch(tiny_data, one_shard):
    streams = [MelCaptionStream(tiny_data["mels"], seed=5, rank=r, world_size=2) for r in (0, 1)]
    for epoch in range(3):
        mine = [set(s._my_shards(epoch)) for s in streams]
        assert not mine[0] & mine[1] and mine[0] | mine[1] == set(streams[0].paths)
    assert splits_by_shard(3, 2, 0) and not splits_by_shard(3, 2, 2) and not splits_by_shard(8, 1, 0)
    whole = batch_stream(one_shard, 4, 5, 8, 0)
    halves = [batch_stream(one_shard, 4, 5, 8, 0, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(5):
        mels, captions = next(whole)
        parts = [next(h) for h in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), mels)
        assert parts[0][1] + parts[1][1] == captions


def test_batch_size_must_split_evenly_over_processes():
    assert local_batch_size(16, 4) == 4
    with pytest.raises(ValueError, match=r"train.batch_size 6 .* 4 processes .* multiple of 4"):
        local_batch_size(6, 4)


def test_torchrun_command_single_node_multi_node_and_inside_torchrun():
    cfg = {"batch_size": 8, "processes_per_node": 4, "nodes": 1}
    command = torchrun_command(cfg, ["train", "--out", "run"], env={})
    assert command[1:] == ["-m", "torch.distributed.run", "--nproc-per-node", "4", "--nnodes", "1",
                           "--signals-to-handle", "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", "--standalone",
                           "-m", "scenesynth.cli", "train", "--out", "run"]
    assert torchrun_command({**cfg, "processes_per_node": 1}, ["train"], env={}) is None
    assert torchrun_command(cfg, ["train"], env={"LOCAL_RANK": "0", "WORLD_SIZE": "4"}) is None
    slurm = {"MASTER_ADDR": "node001", "MASTER_PORT": "29400", "SLURM_JOB_ID": "77"}
    multi = torchrun_command({**cfg, "nodes": 2}, ["train"], env=slurm)
    assert multi[multi.index("--rdzv-endpoint") + 1] == "node001:29400" and "77" in multi
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        torchrun_command({**cfg, "nodes": 2}, ["train"], env={})
    with pytest.raises(ValueError, match="multiple of 8"):
        torchrun_command({**cfg, "nodes": 2, "batch_size": 12}, ["train"], env=slurm)


@pytest.mark.slow
def test_training_logs_to_an_mlflow_tracking_server(tmp_path, tiny_params, tiny_data):
    """A real `mlflow server` (sqlite behind it, artifacts proxied) as on a cluster's login node."""
    port = free_port()
    env = {**venv_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen([shutil.which("mlflow", path=env["PATH"]), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--artifacts-destination", str(tmp_path / "artifacts")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        params = with_overrides(tiny_params, mlflow={"tracking_uri": uri, "experiment": "server"},
                                train={"steps": 1})
        run = tmp_path / "run"
        summary = loop.train(params, tiny_data["mels"], tiny_data["text"], run, run / "m.json")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        logged = client.get_run(summary["mlflow_run_id"])
        assert logged.data.metrics["g_total"] == pytest.approx(summary["last_losses"]["g/total"])
        assert [a.path for a in client.list_artifacts(logged.info.run_id, "samples")]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.parametrize("signum, to_group", [(signal.SIGTERM, False), (signal.SIGUSR1, True)],
                         ids=["SIGTERM-to-the-launcher", "SIGUSR1-to-every-process"])
def test_a_stop_signal_stops_every_rank_at_one_step_and_rank_0_writes(tmp_path, settings, one_shard, tiny_data,
                                                                     signum, to_group):
    """SIGTERM to `scenesynth train` (the torchrun launcher), or SIGUSR1 to every process (launcher,
    torchrun, ranks: what `sbatch --signal=USR1@...` does): it reaches every rank, the ranks agree on the
    step, rank 0 writes the checkpoint (with its place in the batch stream), nobody deadlocks, and the
    command exits 75; the same command resumes from that step."""
    overlay = yaml.safe_load(settings["overlay"].read_text())
    overlay["train"].update(steps=12, checkpoint_every=1000, sample_every=1000, log_every=1, eval_every=0)
    path = tmp_path / "two_processes_long.yaml"
    path.write_text(yaml.safe_dump(overlay))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scenesynth.cli", "train", "--params", str(REPO / "params.yaml"),
           "--overlay", str(path), "--shards", one_shard, "--text", str(tiny_data["text"]),
           "--out", str(run), "--metrics", str(run / "m.json")]
    proc = subprocess.Popen(cmd, env=venv_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "step 3:" in line:
            break
    if to_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    log = "".join(lines) + out
    assert proc.returncode == RESUMABLE_EXIT, log[-3000:]
    assert f"stopped early by {signal.Signals(signum).name}" in log
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert saved["world_size"] == 2 and 3 <= saved["step"] < 12 and saved["stream_drawn"] > 0
    resumed = subprocess.run(cmd, env=venv_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {run / 'checkpoints' / 'last.pt'} at step {saved['step']}" in resumed.stderr
    assert torch.load(run / "model.pt", weights_only=True)["step"] == 12


def _train_with_evaluation(rank, params, shards, text, run, inputs):
    loop.train(params, shards, text, run, run / "m.json", evaluation=inputs)


def test_under_ddp_rank_0_evaluates_and_the_other_rank_waits_for_it(tmp_path, settings, one_shard, tiny_data,
                                                                    tiny_params):
    """2 ranks, an evaluation at steps 2 and 4: rank 0 alone scores and writes; nobody deadlocks
    (run_ranks returns only when both ranks have finished training)."""
    from scenesynth.data.dev_set import build_dev_set
    from scenesynth.training.periodic_eval import EVAL_FILE, EvalInputs

    build_dev_set(tiny_params, tmp_path / "dev", raw_manifest=tiny_data["raw"])
    inputs = EvalInputs(tmp_path / "dev" / "manifest.parquet", tiny_data["raw"], tmp_path / "pretrained",
                        tmp_path / "cache")
    run = tmp_path / "run"
    run_ranks(_train_with_evaluation, with_overrides(settings["two"], train={"eval_every": HALF}), one_shard,
              tiny_data["text"], run, inputs)
    record = json.loads((run / "checkpoints" / EVAL_FILE).read_text())
    assert [e["step"] for e in record["history"]] == [HALF, STEPS]
    assert json.loads((run / "m.json").read_text())["best_step"] == record["best"]["step"]
    assert not list((run / "checkpoints").glob(".eval*"))  # the temporary clips are gone
