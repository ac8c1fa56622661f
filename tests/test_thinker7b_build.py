"""The full-size random Qwen2.5-Omni-7B that the GPU tier and bench_e2e.py build (benchmarks/_thinker7b.py) reads a
request made by the tiny processor exactly as the tiny model does. Built on the meta device (no weights), so the
CPU suite catches what only a GPU run would otherwise find (the first GPU check did: the library's thinker config
has no vision start id, and the full-size build used the real tokenizer's ids with the tiny processor)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _thinker7b import build_seats_7b, thinker_7b_config  # noqa: E402

from seats_cli.api import context_report  # noqa: E402
from seats_cli.media import decode_video  # noqa: E402
from seats_cli.methods import build_pruner  # noqa: E402
from seats_cli.request import frame_policy  # noqa: E402


def test_real_7b_config_has_the_checkpoint_vision_ids():
    cfg = thinker_7b_config()
    assert (cfg.vision_start_token_id, cfg.vision_end_token_id, cfg.video_token_index) == (151652, 151653, 151656)
    assert cfg.text_config.num_hidden_layers == 28 and cfg.vision_config.out_hidden_size == 3584


def test_full_size_build_reads_a_tiny_processor_request_like_the_tiny_model(tiny_seats, sample_path):
    seats, _ = build_seats_7b("meta")
    big, tiny = seats.adapter, tiny_seats.adapter
    assert next(big.model.parameters()).device.type == "meta"
    assert big.text_config.hidden_size == 3584 and len(big.layers) == 28
    media = decode_video(sample_path, frame_policy(big.config))
    req_big = big.prepare(media, "What is moving?")
    req_tiny = tiny.prepare(media, "What is moving?")
    assert torch.equal(req_big.inputs["input_ids"], req_tiny.inputs["input_ids"])
    ids = req_big.inputs["input_ids"][0]
    cfg = big.model.config
    assert int((ids == cfg.video_token_index).sum()) == req_big.layout.n_video > 0
    assert int((ids == cfg.audio_token_index).sum()) == req_big.layout.n_audio > 0
    assert int((ids == cfg.vision_start_token_id).sum()) == 1
    pos_big = big.position_ids(req_big)
    assert torch.equal(pos_big, tiny.position_ids(req_tiny))
    _, plan = build_pruner("seats", big.config, req_big.layout, trr=0.1)
    ctx = context_report(big, req_big, req_big.layout, plan)
    assert ctx["tokens_before_pruning"] == req_big.layout.seq_len == ids.numel()
    assert ctx["max_position_id"] == int(pos_big.max()) and ctx["limit"] == 32768
