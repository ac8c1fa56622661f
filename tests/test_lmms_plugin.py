"""The lmms-eval plugin through lmms-eval's own registry and evaluator (``pip install -e ".[lmms]"``): `seats`
resolves from the entry point group, builds from a model-args string, answers `generate_until` requests on the
tiny model, and an exported Daily-Omni copy runs as an lmms-eval task with --include_path semantics."""

from __future__ import annotations

import json

import pytest

lmms_eval = pytest.importorskip("lmms_eval", reason="the lmms tier needs: pip install -e '.[lmms]'")

from media_factory import make_clip  # noqa: E402
from test_eval_benchmarks import build  # noqa: E402

ARGS = "pretrained=tiny,method=seats,trr=0.35,device=cpu,dtype=float32,max_new_tokens=2,max_frames=4"


@pytest.fixture(scope="module")
def lm(seats_cache):
    from lmms_eval.models import get_model

    cls = get_model("seats")  # through the entry point, no lmms-eval file edited
    assert cls.__module__ == "seats_cli.lmms_plugin"
    return cls.create_from_arg_string(ARGS)


def test_model_args_are_typed_and_checked(lm):
    assert lm.options == {"method": "seats", "trr": 0.35, "max_frames": 4, "max_new_tokens": 2, "seed": 0}
    from lmms_eval.models import get_model

    with pytest.raises(ValueError, match="unknown model_args bogus"):
        get_model("seats").create_from_arg_string(ARGS + ",bogus=1")
    told = get_model("seats").create_from_arg_string(ARGS + ",processor_fps=official")
    assert told.options["processor_fps"] == "official"  # as the authors' wrappers: the processor is told no fps
    with pytest.raises(ValueError, match="--processor-fps 'x' is not one of: sampled, official"):
        get_model("seats").create_from_arg_string(ARGS + ",processor_fps=x")


def test_generate_until_answers_like_seats_ask(lm, tmp_path):
    from lmms_eval.api.instance import Instance

    clip = make_clip(tmp_path / "c.mp4", seconds=1.0)
    docs = [{"video": str(clip), "q": "What moves? A. a square B. a circle"}, {"video": str(clip), "q": "Which tone?"}]
    lm.task_dict = {"t": {"test": docs}}
    reqs = [Instance("generate_until", (d["q"], {"until": ["\n\n"], "max_new_tokens": 5}, lambda doc: [doc["video"]],
                                        i, "t", "test"), idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1})
            for i, d in enumerate(docs)]
    got = lm.generate_until(reqs)
    want = [lm.seats.ask(str(clip), d["q"], method="seats", trr=0.35, max_frames=4, max_new_tokens=2).answer
            for d in docs]
    assert got == [w.split("\n\n")[0] for w in want]
    assert [r["method"] for r in lm.records[-2:]] == ["seats", "seats"]
    assert lm.records[-1]["reused"]["encoders"]  # the second request about the same clip

    lm.use_audio = False  # the plugin hands over the decoded media without its sound: the same object per file
    try:
        lm.generate_until(reqs)
    finally:
        lm.use_audio = True
    first, second = lm.records[-2:]
    assert first["media"]["audio_samples"] is None and second["reused"]["decode"] and second["reused"]["encoders"]
    assert second["latency_ms"]["media"] == 0.0


def test_exported_task_runs_in_lmms_evals_evaluator(lm, tmp_path):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from seats_cli.benchmarks import SPECS, extract_letter, read
    from seats_cli.lmms_tasks import export

    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    root = build("dailyomni", tmp_path / "daily", clip)
    task_dir = tmp_path / "tasks"
    yaml_path, model_args = export("dailyomni", root, task_dir)
    assert yaml_path.name == "seats_dailyomni.yaml" and "max_frames=128" in model_args
    rows = [json.loads(x) for x in (task_dir / "seats_dailyomni.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["A", "B", "D"]
    out = simple_evaluate(model=lm, tasks=["seats_dailyomni"], task_manager=TaskManager(include_path=str(task_dir)),
                          log_samples=False)
    res = out["results"]["seats_dailyomni"]
    # the same questions asked directly, scored with the same extractor
    qs = read("dailyomni", root)
    correct = [extract_letter(lm.seats.ask(q.video, SPECS["dailyomni"].prompt(q), method="seats", trr=0.35,
                                           max_frames=4, max_new_tokens=2).answer, q.options) == q.answer for q in qs]
    assert res["accuracy,none"] == pytest.approx(sum(correct) / 3)
    assert "unparsable,none" in res


@pytest.mark.parametrize("first", ["seats_cli.lmms_plugin", "lmms_eval.models"])
def test_the_plugin_registers_whichever_module_is_imported_first(first):
    """The entry point's manifest is read while lmms-eval's model package loads; importing the plugin module first
    found it half initialised ("partially initialized module", no plugin model registered in that process)."""
    import subprocess
    import sys

    code = (f"import {first}\nfrom lmms_eval.models import MODEL_REGISTRY_V2 as r\n"
            "print(r.get_manifest('seats').simple_class_path)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "seats_cli.lmms_plugin.SeatsLMM"
    assert "partially initialized" not in proc.stderr
