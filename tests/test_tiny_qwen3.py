"""The offline tiny Qwen3-Omni thinker (seats_cli.models.tiny_qwen3): it round-trips through
``save_pretrained``/``from_pretrained``, carries the real special tokens and token-id config, and the stock
processor and ``forward`` give the interleaved layout of SEATS_SPEC §7.6 on a 4-s clip with sound."""

from __future__ import annotations

import pytest
import torch
from media_factory import make_clip

from seats_cli import media as seats_media
from seats_cli.config import ModelConfig, configs_dir
from seats_cli.models import tiny_qwen3 as tq
from seats_cli.request import frame_policy

# Real Qwen3-Omni ids (SEATS_SPEC §7.6); the tiny vocabulary keeps their order after the 256 byte tokens.
REAL_IDS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
    "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655, "<|video_pad|>": 151656,
    "<|audio_start|>": 151669, "<|audio_end|>": 151670, "<|audio_pad|>": 151675,
}
TTS_REAL_IDS = range(151671, 151675)


def tiny_id(real_id: int) -> int:
    return 256 + real_id - 151643


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    return tq.tiny_qwen3_model_dir(tmp_path_factory.mktemp("tiny-qwen3-cache"))


@pytest.fixture(scope="module")
def loaded(qwen3_dir):
    """Model and processor loaded back from the folder, offline."""
    from transformers import AutoProcessor, Qwen3OmniMoeThinkerForConditionalGeneration

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        model = Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(qwen3_dir, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(qwen3_dir)
    return model.eval(), processor


@pytest.fixture(scope="module")
def clip_inputs(loaded, tmp_path_factory):
    """A 4-s 16:9 clip with sound at 10 fps, decoded with the preset's policy and run through the processor
    exactly as SEATS_SPEC §7.6 prescribes."""
    _, processor = loaded
    cfg = ModelConfig.from_yaml(configs_dir() / "tiny_qwen3.yaml")
    path = make_clip(tmp_path_factory.mktemp("tiny-qwen3-clip") / "clip.mp4", width=128, height=72, fps=10,
                     seconds=4)
    media = seats_media.decode_video(path, frame_policy(cfg))
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": cfg.system_prompt}]},
        {"role": "user", "content": [{"type": "video", "video": str(path)}, {"type": "text", "text": "What is it?"}]},
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    batch = processor(
        text=text, videos=[media.frames], audio=[media.audio], audio_from_video_indices=[0],
        load_audio_from_video=True,
        videos_kwargs={"fps": media.sample_fps, "do_resize": False, "cap_pixels_per_frame": False},
        return_tensors="pt",
    )
    return media, text, batch


def _runs(ids: list[int], names: dict[int, str]) -> list[tuple[str, int]]:
    out: list[list] = []
    for i in ids:
        name = names.get(i, "T")
        if out and out[-1][0] == name:
            out[-1][1] += 1
        else:
            out.append([name, 1])
    return [(n, c) for n, c in out]


def test_folder_round_trips_with_identical_logits(qwen3_dir, loaded, clip_inputs):
    model, processor = loaded
    assert (qwen3_dir / "seats_tiny_qwen3.json").is_file()
    assert tq.tiny_qwen3_model_dir(qwen3_dir.parent) == qwen3_dir  # built once, found again
    assert type(processor).__name__ == "Qwen3OmniMoeProcessor"
    assert model.config.position_id_per_seconds == 13
    _, text, batch = clip_inputs
    # the in-memory processor gives the same tensors as the loaded one
    fresh = tq.build_tiny_qwen3_processor()
    assert fresh.tokenizer(text).input_ids == processor.tokenizer(text).input_ids
    memory = tq.build_tiny_qwen3_thinker()
    with torch.no_grad():
        a = memory(**batch, use_audio_in_video=True).logits
        b = model(**batch, use_audio_in_video=True).logits
        short = torch.tensor([processor.tokenizer("hello there").input_ids])
        ta, tb = memory(input_ids=short).logits, model(input_ids=short).logits
    assert torch.equal(a, b)
    assert torch.equal(ta, tb)
    assert ta[0, -1].std() > 0.1  # random weights at 1/sqrt(fan_in): logits are not flat


def test_special_token_ids(loaded):
    model, processor = loaded
    for tok in (tq.build_tiny_qwen3_tokenizer(), processor.tokenizer):
        for token, real in REAL_IDS.items():
            assert tok.convert_tokens_to_ids(token) == tiny_id(real), token
        # every added token between 151643 and 151675 exists, in the real order
        assert [tok.convert_tokens_to_ids(t) for t in tq.SPECIAL_TOKENS] == list(range(256, 256 + 33))
        assert [tq.SPECIAL_TOKENS[r - 151643] for r in TTS_REAL_IDS] == [
            "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>"]
        assert tok.decode([104, 105, tiny_id(151645)], skip_special_tokens=True) == "hi"
        # as in the real vocabulary, <tool_call> .. </think> are added but not special: decoding keeps them
        assert tok.decode([tiny_id(151667), 104, tiny_id(151668)], skip_special_tokens=True) == "<think>h</think>"
    tok = processor.tokenizer
    cfg = model.config
    assert cfg.audio_token_id == tok.audio_token_id == processor.audio_token_id == tiny_id(151675)
    assert cfg.image_token_id == tok.image_token_id == processor.image_token_id == tiny_id(151655)
    assert cfg.video_token_id == tok.video_token_id == processor.video_token_id == tiny_id(151656)
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids(processor.vision_bos_token) == tiny_id(151652)
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids(processor.vision_eos_token) == tiny_id(151653)
    assert cfg.audio_start_token_id == tok.convert_tokens_to_ids(processor.audio_bos_token) == tiny_id(151669)
    assert cfg.audio_end_token_id == tok.convert_tokens_to_ids(processor.audio_eos_token) == tiny_id(151670)
    text = cfg.get_text_config()
    assert text.eos_token_id == model.generation_config.eos_token_id == tok.eos_token_id == tiny_id(151645)
    assert text.pad_token_id == model.generation_config.pad_token_id == tok.pad_token_id == tiny_id(151643)
    # the config trap (SEATS_SPEC §7.6): model and processor agree on 13 position ids per second
    assert cfg.position_id_per_seconds == processor.position_id_per_seconds == 13
    assert text.vocab_size == tq.VOCAB_SIZE >= len(tok)


def test_processor_interleaves_video_and_audio_by_time(loaded, clip_inputs):
    model, processor = loaded
    media, text, batch = clip_inputs
    assert "<|vision_start|><|video_pad|><|vision_end|>" in text
    assert media.sample_fps == 2.0 and tuple(media.frames.shape) == (8, 3, 288, 512)
    assert batch["video_grid_thw"].tolist() == [[4, 18, 32]]  # 8 frames / temporal patch 2; 288/16 x 512/16
    assert batch["video_second_per_grid"].tolist() == [1.0]  # temporal_patch_size / fps
    assert tuple(batch["input_features"].shape) == (1, 128, 400)  # 4 s at 100 mel frames/s
    cfg = model.config
    ids = batch["input_ids"][0].tolist()
    vs, ve = ids.index(cfg.vision_start_token_id), ids.index(cfg.vision_end_token_id)
    # the block is <|vision_start|><|audio_start|> ... <|audio_end|><|vision_end|>
    assert ids[vs + 1] == cfg.audio_start_token_id and ids[ve - 1] == cfg.audio_end_token_id
    block = ids[vs + 2:ve - 1]
    runs = _runs(block, {cfg.video_token_id: "V", cfg.audio_token_id: "A"})
    # Observed: [V144 A13] x 4. A grid's time id is t * (2 / fps) * 13 = 13 t at fps 2; audio token i has time
    # id i (13 per second, 52 for 4 s). Merged by time id with video first on ties: grid 0 (id 0), audio 0..12,
    # grid 1 (id 13), audio 13..25, ... Each grid is 18 x 32 patches, 2x2-merged into 9 x 16 = 144 tokens.
    assert runs == [("V", 144), ("A", 13)] * 4
    assert block.count(cfg.video_token_id) == 576 and block.count(cfg.audio_token_id) == 52
    assert ids.count(cfg.video_token_id) == 576 and ids.count(cfg.audio_token_id) == 52  # nowhere else
    # positions (float, 3 x B x S): grid t at (st + 13 t, st + row, st + col), audio i at st + i on all axes
    pos, delta = model.model.get_rope_index(
        batch["input_ids"], None, batch["video_grid_thw"], batch["attention_mask"], True,
        batch["feature_attention_mask"].sum(-1), batch["video_second_per_grid"],
    )
    assert pos.dtype == torch.float32 and tuple(pos.shape) == (3, 1, len(ids))
    st = vs + 2  # two text positions for <|vision_start|><|audio_start|>
    p = pos[:, 0]
    assert p[:, vs + 2].tolist() == [st, st, st]  # grid 0, row 0, col 0
    assert p[:, vs + 2 + 143].tolist() == [st, st + 8, st + 15]  # grid 0, last token: merged grid is 9 x 16
    assert p[:, vs + 2 + 144].tolist() == [st, st, st]  # audio token 0
    assert p[:, vs + 2 + 157].tolist() == [st + 13, st, st]  # grid 1, row 0, col 0
    assert float(delta) == float(p.max() + 1 - len(ids))


def test_stock_forward_runs_with_audio_in_video(loaded, clip_inputs):
    model, _ = loaded
    _, _, batch = clip_inputs
    lm = model.model.language_model
    assert len(lm.layers) == 48 == model.config.get_text_config().num_hidden_layers
    assert all(type(layer.mlp).__name__ == "Qwen3OmniMoeThinkerTextSparseMoeBlock" for layer in lm.layers)
    mlp = lm.layers[0].mlp
    assert tuple(mlp.experts.gate_up_proj.shape) == (4, 64, 64) and tuple(mlp.experts.down_proj.shape) == (4, 64, 32)
    assert mlp.gate.top_k == 2 and not hasattr(mlp, "shared_expert")
    attn = lm.layers[0].self_attn
    assert attn.q_norm.weight.shape == (16,) and attn.k_norm.weight.shape == (16,)
    assert len(model.model.visual.merger_list) == 3  # DeepStack mergers for blocks 1, 2, 3
    with torch.no_grad():
        logits = model(**batch, use_audio_in_video=True).logits
    assert tuple(logits.shape) == (1, batch["input_ids"].shape[1], tq.VOCAB_SIZE)
    assert torch.isfinite(logits).all()


def test_preset_matches_the_model():
    cfg = ModelConfig.from_yaml(configs_dir() / "tiny_qwen3.yaml")
    text = tq.tiny_qwen3_thinker_config().get_text_config()
    a = cfg.architecture
    assert (a.num_layers, a.hidden_size, a.num_attention_heads, a.num_key_value_heads, a.head_dim, a.vocab_size) == (
        text.num_hidden_layers, text.hidden_size, text.num_attention_heads, text.num_key_value_heads,
        text.head_dim, text.vocab_size)
    assert (a.num_experts, a.num_experts_per_tok, a.moe_intermediate_size) == (
        text.num_experts, text.num_experts_per_tok, text.moe_intermediate_size)
    assert cfg.family == "qwen3_omni" and cfg.tiny and not cfg.calibrated
    assert cfg.media.position_ids_per_second == tq.tiny_qwen3_thinker_config().position_id_per_seconds
    real = ModelConfig.from_yaml(configs_dir() / "qwen3_omni_30b_a3b.yaml")
    assert cfg.media == real.media and cfg.seats == real.seats



@pytest.mark.parametrize("samples", [1600, 16000, 64123, 72000, 159999, 160001, 480000, 4800000])
def test_analytic_audio_tokens_equal_the_qwen3_processor(samples):
    import numpy as np
    from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths

    from seats_cli.config import ModelConfig
    from seats_cli.models.tiny_qwen3 import build_tiny_qwen3_processor
    from seats_cli.shape import audio_token_count

    fe = build_tiny_qwen3_processor().feature_extractor(
        [np.zeros(samples, np.float32)], sampling_rate=16000, padding=True, truncation=False,
        return_attention_mask=True)
    mel = int(fe["attention_mask"].sum())
    assert audio_token_count(samples, ModelConfig.from_name("tiny-qwen3")) == (
        mel, int(_get_feat_extract_output_lengths(np.array(mel))), True)
