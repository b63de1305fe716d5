"""The SLURM profile: its dry run at paper scale, and the tiny DAG on a real single-node
SLURM cluster on 127.0.0.1 with every non-local job submitted through sbatch.

The cluster test needs root (it installs slurm-wlm and munge with apt-get and writes
/etc/slurm/slurm.conf); CI runs it, `pytest -m "not slurm"` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from conftest import REPO, venv_env
from test_workflow import TINY, project_copy

SCRIPTS = REPO / "scripts" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
TEST_PROFILE = REPO / "tests" / "e2e" / "slurm_profile"
DAG_LIMIT_S = 900  # `timeout` around Snakemake: a hung run ignores SIGTERM, hence -k
SLURM_TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "munged")
COMPUTE_RULES = {"resample", "mel", "text", "train", "generate", "evaluate"}


def jobs_in_log(text: str) -> dict[int, tuple[str, bool]]:
    """Snakemake job id -> (rule, is local rule), from the job headers Snakemake prints."""
    jobs, header = {}, None
    for line in text.splitlines():
        if match := re.match(r"^(local)?rule (\w+):$", line.strip()):
            header = (match[2], bool(match[1]))
        elif header and (match := re.match(r"^jobid: (\d+)$", line.strip())):
            jobs[int(match[1])] = header
            header = None
    return jobs


def submissions_in_log(text: str) -> dict[int, str]:
    """Snakemake job id -> SLURM job id, from the plugin's submission messages."""
    return {int(job): slurm for job, slurm in
            re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", text)}


def resources_in_dry_run(text: str) -> dict[str, dict[str, str]]:
    """Rule -> resources, from a dry run's job listing (which never says `localrule`)."""
    rules, current = {}, None
    for line in text.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            current = match[1]
            rules[current] = {}
        elif current and line.strip().startswith("resources:"):
            pairs = line.strip().removeprefix("resources:").split(",")
            rules[current].update(pair.strip().split("=", 1) for pair in pairs if "=" in pair)
    return rules


@pytest.mark.e2e
def test_dry_run_plans_paper_scale_jobs_with_their_slurm_resources(tmp_path):
    """The profile parses (every slurm-* option exists in this plugin version) and gives
    each rule what it needs: a GPU for training, many CPUs for the audio stages."""
    project = project_copy(tmp_path)
    done = subprocess.run(["snakemake", "--profile", "profiles/slurm", "-n"], cwd=project, env=venv_env(),
                          capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    rules = resources_in_dry_run(log)
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())

    assert COMPUTE_RULES <= set(rules)
    for rule in COMPUTE_RULES:
        resources = rules[rule]
        assert int(resources["runtime"]) > 0 and int(resources["mem_mb"]) > 0
        assert resources["slurm_partition"]
    train = rules["train"]
    assert int(train["gpu"]) >= 1 and int(train["cpus_per_gpu"]) >= 1
    assert train["slurm_partition"] != profile["default-resources"]["slurm_partition"]
    for rule in ("resample", "mel"):  # SLURM grants exactly the threads the rule uses
        assert int(rules[rule]["cpus_per_task"]) == profile["set-threads"][rule] >= 16


def _cluster_skip_reason() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root: installs slurm-wlm/munge and writes /etc/slurm/slurm.conf"
    if not all(shutil.which(tool) for tool in SLURM_TOOLS) and not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture
def slurm_cluster(tmp_path_factory):
    """A single-node cluster for this test, stopped (by PID) even when the test fails."""
    if reason := _cluster_skip_reason():
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("slurm_cluster")
    try:
        started = subprocess.run(["bash", str(SCRIPTS / "start_local_cluster.sh"), str(work)],
                                 capture_output=True, text=True, timeout=900)
        assert started.returncode == 0, f"cluster did not start:\n{started.stdout}\n{started.stderr}"
        yield work
    finally:
        stopped = subprocess.run(["bash", str(SCRIPTS / "stop_local_cluster.sh"), str(work)],
                                 capture_output=True, text=True, timeout=120)
        print(stopped.stdout, stopped.stderr)


def slurm_states() -> dict[str, str]:
    """SLURM job id -> state, finished jobs included (kept for MinJobAge)."""
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return dict(line.split("|", 1) for line in out.split())


# The training outlasts its jobs (runtime: 1 minute in the test profile): ~0.3 s a step on one idle core
# here, so 400 steps need two to four jobs; checkpoints are only scheduled at the end, so every job but
# the last stops through the SIGTERM of its time limit.
SLURM_TRAIN = {"steps": 400, "checkpoint_every": 100000, "log_every": 50, "sample_every": 100000, "cpu_threads": 1,
               "eval_every": 0}  # (the in-training evaluation and its resume: tests/training/test_periodic_eval.py)
SLURM_OVERLAY = "config/tiny_slurm.yaml"
TEXT_DONE = "data/text/info.json"  # the text rule's output: with the shards, what the training reads


def write_overlay(project) -> None:
    settings = yaml.safe_load((project / "config" / "tiny.yaml").read_text())
    settings["train"].update(SLURM_TRAIN)
    (project / SLURM_OVERLAY).write_text(yaml.safe_dump(settings))


def train_uninterrupted(project, reference, env) -> subprocess.Popen:
    """The same training in one process, on the DAG's own shards and text cache, in a sibling folder (its own
    MLflow database) under the same relative overlay path (the model file records it)."""
    (reference / "config").mkdir(parents=True)
    shutil.copy2(project / "params.yaml", reference / "params.yaml")
    shutil.copy2(project / SLURM_OVERLAY, reference / SLURM_OVERLAY)
    cmd = ["scenesynth", "train", "--params", "params.yaml", "--overlay", SLURM_OVERLAY,
           "--shards", str(project / "data/mels"), "--text", str(project / "data/text"), "--out", "run",
           "--metrics", "train.json"]
    return subprocess.Popen(cmd, cwd=reference, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.slurm
def test_tiny_dag_runs_to_the_end_through_sbatch_with_training_spanning_several_time_limited_jobs(
        tmp_path, slurm_cluster):
    project = project_copy(tmp_path)
    write_overlay(project)
    # The copy's own package, not the editable install: each SLURM job re-evaluates the rules'
    # code fingerprints, and a source edit mid-run would make its job step rerun upstream rules.
    env = {**venv_env(), "PYTHONPATH": str(project / "src")}
    cmd = ["timeout", "-k", "10", str(DAG_LIMIT_S), "snakemake", "--profile", "profiles/slurm",
           "--profile", str(TEST_PROFILE), "--config", f"overlay={SLURM_OVERLAY}"]  # --config last: it takes what follows
    started = time.perf_counter()
    dag = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reference = None
    try:
        # While SLURM trains on one core, the uninterrupted reference trains on the other.
        while dag.poll() is None and reference is None:
            if (project / "data/mels/index.json").is_file() and (project / TEXT_DONE).is_file():
                reference = train_uninterrupted(project, tmp_path / "reference", env)
            time.sleep(2)
        log, _ = dag.communicate(timeout=DAG_LIMIT_S + 60)
    finally:
        if dag.poll() is None:
            dag.kill()
    seconds = time.perf_counter() - started
    print(f"tiny DAG through SLURM: {seconds:.1f} s")
    (tmp_path / "snakemake.log").write_text(log)
    slurm_logs = "\n".join(f"== {p}\n{p.read_text()[-1500:]}"
                           for p in sorted((project / ".snakemake/slurm_logs").rglob("*.log")))
    assert dag.returncode == 0, (f"exit {dag.returncode} after {seconds:.0f} s (124: timed out)\n"
                                 f"{log[-4000:]}\n{slurm_logs[-4000:]}")

    jobs = jobs_in_log(log)
    submitted = submissions_in_log(log)
    cluster_jobs = {job for job, (_, local) in jobs.items() if not local}
    assert cluster_jobs and cluster_jobs == set(submitted), (jobs, submitted)
    assert COMPUTE_RULES <= {jobs[job][0] for job in submitted}
    states = slurm_states()
    assert all(states.get(slurm_id) == "COMPLETED" for slurm_id in submitted.values()), (submitted, states)

    # The training ran through several jobs: each stopped at its time limit, the last one finished ...
    train_job = next(job for job, (rule, _) in jobs.items() if rule == "train")
    train_slurm_ids = re.findall(rf"Job {train_job} has been submitted with SLURM jobid (\d+)", log)
    assert len(train_slurm_ids) >= 2, f"the training fitted in one job: {train_slurm_ids}\n{slurm_logs[-3000:]}"
    assert {states.get(i) for i in train_slurm_ids[:-1]} <= {"TIMEOUT", "FAILED"}, (train_slurm_ids, states)
    assert "resumed from" in (project / "logs/train.log").read_text()  # (the log of the last job)
    # ... and ended with the weights of one uninterrupted run, byte for byte.
    assert reference is not None, "the DAG never reached the training"
    assert reference.wait(timeout=900) == 0, reference.stderr.read()[-2000:]
    assert (project / "runs/train/model.pt").read_bytes() == (tmp_path / "reference/run/model.pt").read_bytes()

    fad = json.loads((project / "metrics/fad.json").read_text())
    assert fad["n_prompts"] > 0 and fad["fad_mean"] >= 0
    assert (project / "metrics/conditioning.json").is_file()
