"""`seats batch --backend ray` on a real local Ray cluster (2 CPUs, the tiny model, a handful of rows): the same
answers as --backend local, in input order with ids and their types, a failing row does not stop the others, and a
worker killed mid-run is restarted without losing or duplicating a row. Needs: pip install -e ".[distributed]"."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="the distributed tier needs: pip install -e '.[distributed]'")

from seats_cli.cli import app  # noqa: E402

FAST = ["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "2", "--max-frames", "4",
        "--quiet"]


@pytest.fixture(scope="module")
def cluster():
    # 2 actors + Ray Data's own tasks: 3 logical CPUs on the CI machine's 2 cores
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def rows(tmp_path, sample_path):
    shutil.copy(sample_path, tmp_path / "a.mp4")
    data = [{"id": 1, "video": "a.mp4", "question": "What moves?"},
            {"id": "1", "video": "a.mp4", "question": "What sound?", "method": "full"},
            {"id": "bad", "video": "missing.mp4", "question": "Where?"},
            {"id": 7, "video": "a.mp4", "question": "Which colour?", "trr": 0.2},
            {"id": "kill", "video": "a.mp4", "question": "How many?", "method": "fastv"}]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in data))
    return src


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_ray_equals_local_in_input_order(cluster, rows, tmp_path):
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert CliRunner().invoke(app, ["batch", str(rows), "--out", str(local), *FAST]).exit_code == 1  # the bad row
    res = CliRunner().invoke(app, ["batch", str(rows), "--out", str(remote), "--backend", "ray", "--workers", "2",
                                   *FAST])
    assert res.exit_code == 1, res.output
    a, b = _lines(local), _lines(remote)
    assert [r["id"] for r in b] == [1, "1", "bad", 7, "kill"]  # order and JSON types kept
    assert "no such file" in b[2]["error"]
    keep = ("answer", "layers", "flops", "method", "tokens")
    assert [{k: r.get(k) for k in keep} for r in a] == [{k: r.get(k) for k in keep} for r in b]
    import logging  # Ray Data's own INFO lines (one per execution) stay off stderr, after the run too

    assert logging.getLogger("ray.data").getEffectiveLevel() >= logging.ERROR


def test_a_killed_worker_is_retried_without_losing_or_duplicating_rows(cluster, rows, tmp_path):
    from seats_cli import batch as runner
    from seats_cli.config import resolve_config
    from seats_cli.distributed import run_ray

    cfg = resolve_config("tiny")
    todo = runner.prevalidate(runner.read_jsonl(str(rows)), cfg)
    lines = []
    marker = tmp_path / "killed"
    run_ray(todo, lines.append, load=dict(model="tiny", device="cpu", dtype="float32"),
            defaults=dict(max_new_tokens=2, max_frames=4), workers=2, fail_once=str(marker))
    assert marker.exists()  # a worker did die on row "kill"
    got = [json.loads(x) for x in lines]
    assert [r["id"] for r in got] == [1, "1", "bad", 7, "kill"]
    assert "error" not in got[4] and got[4]["method"] == "fastv"


def test_without_ray_installed_the_backend_says_how(monkeypatch, rows):
    import seats_cli.distributed as dist

    def missing():
        raise dist.RayMissing(f"--backend ray needs Ray Data: {dist.INSTALL}")

    monkeypatch.setattr(dist, "require_ray", missing)
    res = CliRunner().invoke(app, ["batch", str(rows), "--backend", "ray", *FAST])
    assert res.exit_code == 2 and 'pip install "seats-cli[distributed]"' in res.stderr


def test_eval_on_ray_equals_local(cluster, tmp_path, sample_path):
    """`seats eval --backend ray`: work items are videos (their questions x runs); the rows equal --backend local's,
    in the same order."""
    from test_eval_benchmarks import build

    root = build("custom", tmp_path / "c", sample_path)
    args = ["eval", "--benchmark", "custom", "--data-dir", str(root), "--model", "tiny", "--device", "cpu",
            "--max-frames", "4", "--max-new-tokens", "2", "--method", "seats", "--trr", "0.35", "--quiet"]
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert CliRunner().invoke(app, [*args, "--out", str(local)]).exit_code == 0
    res = CliRunner().invoke(app, [*args, "--out", str(remote), "--backend", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    a, b = _lines(local), _lines(remote)
    assert [(r["id"], r["method"], r["trr"]) for r in a] == [(r["id"], r["method"], r["trr"]) for r in b]
    assert [(r["letter"], r["record"]["layers"]) for r in a] == [(r["letter"], r["record"]["layers"]) for r in b]


def test_a_model_that_does_not_load_on_the_workers_reads_as_on_local(cluster, rows, tmp_path):
    """The workers' model fails to load: each row gets the local backend's "not run: the model did not load (...)"
    line, no Ray traceback or terminal colour codes, and the run ends with the load error (it printed Ray's
    wrapped traceback on stdout and stderr). Batch and eval alike."""
    empty = tmp_path / "emptymodel"
    empty.mkdir()
    args = ["--model", str(empty), "--config", "qwen2.5-omni-7b", "--device", "cpu", "--quiet"]
    outs = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"{backend}.jsonl"
        res = CliRunner().invoke(app, ["batch", str(rows), "--out", str(out), "--backend", backend, *args])
        assert res.exit_code == 1, res.output
        assert res.stderr.strip().splitlines()[-1].startswith(f"error: cannot load model from {empty}")
        outs[backend] = _lines(out)
    assert outs["ray"] == outs["local"]
    assert [r["id"] for r in outs["ray"]] == [1, "1", "bad", 7, "kill"]
    assert outs["ray"][0]["error"].startswith(f"not run: the model did not load (cannot load model from {empty}")
    assert not any("\x1b" in r["error"] for r in outs["ray"])
