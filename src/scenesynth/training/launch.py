"""`scenesynth train` in several processes: the torchrun command line (no torch import here, so
the launching process starts fast; the ranks import torch themselves)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from scenesynth.training.stop_signals import STOP_SIGNALS, TrainingStopped

log = logging.getLogger(__name__)
TORCHRUN_ENV = ("LOCAL_RANK", "WORLD_SIZE")
# torchrun's default set lacks SIGUSR1, which would kill it (and orphan the ranks) on `sbatch --signal=USR1@...`;
# a handled signal is passed on to every rank, which stops with a checkpoint (stop_signals.py).
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def configured_world_size(train_cfg: dict) -> int:
    return int(train_cfg.get("processes_per_node", 1)) * int(train_cfg.get("nodes", 1))


def local_batch_size(batch_size: int, world_size: int) -> int:
    """Each rank's share of the global batch; refuses a batch that does not split evenly."""
    if batch_size % world_size:
        raise ValueError(f"params.yaml: train.batch_size {batch_size} is the global batch and must split evenly "
                         f"over {world_size} processes (train.processes_per_node x train.nodes); "
                         f"set it to a multiple of {world_size}")
    return batch_size // world_size


def inside_torchrun(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return any(name in env for name in TORCHRUN_ENV)


def torchrun_command(train_cfg: dict, cli_args: list[str], env: dict | None = None) -> list[str] | None:
    """The argument list that re-runs `scenesynth <cli_args>` under torchrun, or None for one process.

    One node: `--standalone` (a free local port). Several nodes (SLURM: one `scenesynth train`
    per node, e.g. `srun --ntasks-per-node=1`): c10d rendezvous at MASTER_ADDR:MASTER_PORT,
    with SLURM_JOB_ID as the rendezvous id, all taken from the environment.
    """
    env = os.environ if env is None else env
    nproc, nodes = int(train_cfg.get("processes_per_node", 1)), int(train_cfg.get("nodes", 1))
    if configured_world_size(train_cfg) == 1 or inside_torchrun(env):
        return None
    local_batch_size(train_cfg["batch_size"], configured_world_size(train_cfg))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", str(nodes),
               "--signals-to-handle", TORCHRUN_SIGNALS]
    if nodes == 1:
        command.append("--standalone")
    else:
        if not env.get("MASTER_ADDR"):
            raise RuntimeError(
                f"train.nodes is {nodes}: set MASTER_ADDR to the first node of the job before `scenesynth train`, "
                "e.g. export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) "
                "(docs/cluster-training.md)")
        endpoint = f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '29500')}"
        command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                    "--rdzv-id", env.get("SLURM_JOB_ID", "scenesynth-train")]
    return command + ["-m", "scenesynth.cli", *cli_args]


def run_under_torchrun(train_cfg: dict, cli_args: list[str]) -> bool:
    """Re-run `scenesynth <cli_args>` in train.processes_per_node processes; False if one process is asked for.

    A stop signal (SIGTERM, SIGUSR1) that reaches this launcher alone (`kill PID`) is passed on to
    torchrun as SIGTERM, which torchrun sends to every rank (and SIGKILLs them 30 s later): each rank
    then stops as one process would (stop_signals.py) and this command exits as resumable."""
    command = torchrun_command(train_cfg, cli_args)
    if command is None:
        return False
    log.info("launching %d training processes per node: %s", train_cfg.get("processes_per_node", 1), " ".join(command))
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}  # before the child exists
    try:
        proc = subprocess.Popen(command)
        if received:  # a signal between the handlers and the child: pass it on now
            proc.send_signal(signal.SIGTERM)
        returncode = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if returncode and received:
        raise TrainingStopped(None, signal.Signals(received[0]).name, "the run's checkpoints/last.pt")
    if returncode:
        raise RuntimeError(f"torchrun exited with status {returncode}: a training process failed "
                           "(its error is printed above)")
    return True
