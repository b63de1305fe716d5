"""The benchmark scripts run (their numbers live in docs/benchmarks.md, not in tests)."""

import json
import subprocess
import sys

from conftest import REPO, venv_env


def test_train_step_benchmark_compares_implementations_on_a_tiny_model():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/train_step.py"), "--overlay",
                           str(REPO / "config/tiny.yaml"), "--steps", "1", "--attention", "tfsca,full", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert [r["attention"] for r in rows] == ["tfsca", "full"]
    assert all(r["s_per_step"] > 0 and r["peak_bytes"] > 0 and r["params_g"] > 0 for r in rows)
    assert (rows[0]["n_mels"], rows[0]["n_frames"]) == (32, 64)
