"""lmms-eval tasks for any benchmark seats reads (``seats eval export-lmms``): the three lmms-eval lacks
(Daily-Omni, OmniVideoBench, LVOmniBench) and the others, from their local copies.

``export(name, data_dir, out_dir)`` writes ``seats_<name>.jsonl`` (one row per question: id, absolute video path,
the prompt as the paper ran it, options, gold letter, category), ``seats_<name>.yaml`` (a ``generate_until`` task
over that file with the benchmark's answer length) and this folder's ``utils.py``; then
``lmms-eval --model seats --model_args ... --tasks seats_<name> --include_path OUT_DIR``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

YAML = """# written by `seats eval export-lmms --benchmark {name}` from {data_dir}
task: seats_{name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {rows}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  num_beams: 1
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: !function utils.aggregate_accuracy
    higher_is_better: true
  - metric: unparsable
    aggregation: !function utils.aggregate_unparsable
    higher_is_better: false
metadata:
  version: 1
  # the paper's settings for this benchmark: pass them as --model_args
  model_args: {model_args}
"""


def export(name: str, data_dir: str | Path, out_dir: str | Path) -> tuple[Path, str]:
    """Write the task; returns (the YAML's path, the --model_args the paper's settings need)."""
    from seats_cli import benchmarks as bm

    spec = bm.SPECS[name]
    questions = bm.read(name, data_dir)
    missing = bm.missing_videos(questions)
    if missing:
        raise bm.BenchmarkError(f"{len(missing)} video(s) missing under {data_dir} ({missing[0]}, ...)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = out / f"seats_{name}.jsonl"
    with open(rows, "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps({"id": q.id, "video": str(Path(q.video).resolve()), "prompt": spec.prompt(q),
                                "options": list(q.options), "answer": q.answer, "category": q.category},
                               ensure_ascii=False) + "\n")
    model_args = f"max_frames={spec.max_frames},fps={spec.fps:g}"
    if spec.system is not None:  # "{default}": the model's own system prompt (the plugin expands it)
        model_args += f",system_prompt={spec.system}"
    yaml_path = out / f"seats_{name}.yaml"
    yaml_path.write_text(YAML.format(name=name, data_dir=Path(data_dir).resolve(), rows=json.dumps(str(rows.resolve())),
                                     max_new_tokens=spec.max_new_tokens, model_args=json.dumps(model_args)),
                         encoding="utf-8")
    shutil.copy(Path(__file__).with_name("utils.py"), out / "utils.py")
    return yaml_path, model_args
