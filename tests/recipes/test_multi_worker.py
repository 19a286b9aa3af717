"""Two worker processes on 127.0.0.1 train one fine-tune run under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import pytest
from support import PROJECT_ROOT, RECIPE_DIR, tiny_overrides

import kerascv_tl.tasks.classifier  # noqa: F401  (registers the package's layers for loading model.keras)
from kerascv_tl.cli import main

WORKER = PROJECT_ROOT / "tests" / "recipes" / "multi_worker_train.py"


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tail(path, chars=3000) -> str:
    return path.read_text(errors="replace")[-chars:]


@pytest.mark.slow(seconds=100)
def test_two_workers_train_the_same_model_and_only_the_chief_writes(shapes_classification, tmp_path, capsys):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    overrides = tiny_overrides(shapes_classification, strategy="multi_worker")
    temp = tmp_path / "tmp"  # the workers' TMPDIR: the non-chief's run folder goes there
    temp.mkdir()
    runs, weights, logs = ([tmp_path / f"{name}_{i}" for i in range(2)] for name in ("run", "weights", "log"))
    processes = []
    try:
        for i in range(2):
            env = dict(
                os.environ,
                TF_CPP_MIN_LOG_LEVEL="3",
                TMPDIR=str(temp),
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            )
            command = [
                sys.executable,
                str(WORKER),
                f"{weights[i]}.npz",
                "train",
                str(RECIPE_DIR / "shapes_fine_tune.yaml"),
                "--output",
                str(runs[i]),
            ]
            command += [a for o in overrides for a in ("--set", o)]
            with open(logs[i], "w") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        # A worker that fails leaves the other one waiting at a collective: stop at the first failure.
        deadline = time.time() + 300
        while time.time() < deadline and any(p.poll() is None for p in processes):
            if any(p.poll() not in (None, 0) for p in processes):
                break
            time.sleep(0.5)
        for i, process in enumerate(processes):
            assert process.poll() == 0, f"worker {i} exited with {process.poll()}:\n{_tail(logs[i])}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    chief, other = runs
    info = json.loads((chief / "distribution.json").read_text())
    assert info["strategy"] == "CollectiveAllReduceStrategy" and info["replicas"] == 2  # MultiWorkerMirroredStrategy
    assert {
        "model.keras",
        "metrics.json",
        "model_card.json",
        "history_head.csv",
        "history_fine_tune.csv",
        "checkpoints",
    } <= {p.name for p in chief.iterdir()}
    # The other worker trained in a temporary folder, removed at the end; nothing in its --output.
    assert not other.exists() and not list(temp.glob("kerascv_tl_*"))

    # Both workers end with the same weights, and they are the chief's model.keras.
    first, second = (np.load(f"{w}.npz") for w in weights)
    assert len(first.files) == len(second.files) > 100
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    saved = keras.saving.load_model(chief / "model.keras", compile=False, safe_mode=True)
    for i, variable in enumerate(saved.weights):
        np.testing.assert_array_equal(variable.numpy(), first[f"arr_{i}"], err_msg=variable.path)

    # The chief's run exports, and the SavedModel predicts.
    assert main(["export", str(chief), "--output", str(tmp_path / "models" / "shapes")]) == 0
    image = sorted((shapes_classification / "val" / "circle").glob("*.png"))[0]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "models" / "shapes"), str(image), "--json", "--top-k", "3"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert sorted(line["classes"]) == ["circle", "square", "triangle"] and abs(sum(line["scores"]) - 1) < 1e-4


def test_the_chief_is_worker_0_unless_the_cluster_names_one(monkeypatch, tmp_path):
    from kerascv_tl.distribute import discard_worker_run_dir, is_chief, worker_run_dir

    def tf_config(cluster, task_type, index):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief() and worker_run_dir(tmp_path / "run") == tmp_path / "run"
    workers = {"worker": ["a:1", "b:2"]}
    tf_config(workers, "worker", 0)
    assert is_chief()
    tf_config({"chief": ["c:0"], **workers}, "worker", 0)
    assert not is_chief()
    tf_config({"chief": ["c:0"], **workers}, "chief", 0)
    assert is_chief()
    tf_config(workers, "worker", 1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = worker_run_dir(tmp_path / "run")
    assert path.name == "run" and path.parent.parent == tmp_path / "tmp" and path == worker_run_dir(tmp_path / "run")
    path.mkdir(parents=True)
    discard_worker_run_dir(path)
    assert not path.parent.exists()
