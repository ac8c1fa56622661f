"""Our prefill/decode loop against the stock Qwen2.5-Omni thinker (tiny model, CPU, fp32).

* without drops the engine equals the stock forward (all positions) and stock greedy ``generate`` (sample clip
  with sound, and a clip without an audio track), for sdpa and eager attention;
* the masked reference of tests/reference.py equals the stock model when nothing is hidden (so that the
  SEATS equivalence tests in test_seats_engine.py compare against something trustworthy);
* the tiny model round-trips through save_pretrained/from_pretrained, is built deterministically, and its
  tokenizer/processor carry Qwen2.5-Omni's special tokens and chat template;
* the token layout of the committed sample matches numbers derived by hand;
* the encoder saliency of Stage I matches a brute-force recomputation from the encoders' last layers.
"""

from __future__ import annotations

import torch
import pytest

from reference import (
    full_live,
    kv_visible_for,
    load_tiny,
    masked_reference_generate,
    masked_reference_greedy_given,
    masked_reference_logits,
    prepared_case,
    write_clip,
)
from seats_cli import engine
from seats_cli.methods import build_pruner
from seats_cli.layout import AUDIO, TEXT, VIDEO

QUESTION = "What is moving?"
N_NEW = 8


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def adapter(tiny_seats):
    return tiny_seats.adapter


@pytest.fixture(scope="module")
def eager_adapter(tiny_dir):
    # load_model("tiny", device="cpu", dtype="float32", attn_implementation="eager", cache_dir=tiny_dir.parent)
    ad = load_tiny(tiny_dir, "eager")
    assert ad.attn_implementation == "eager"
    return ad


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory):
    """4 s at 10 fps, 64x48, no audio track."""
    return write_clip(tmp_path_factory.mktemp("clips") / "silent.mp4", seconds=4.0, fps=10, audio=False)


@pytest.fixture(scope="module")
def clips(sample_path, silent_clip):
    return {"sample": sample_path, "silent": silent_clip}


@pytest.fixture(scope="module")
def stock(adapter, clips):
    """Stock forward logits (all positions) and 8 stock greedy tokens per clip, computed once."""
    cache = {}

    def get(clip):
        if clip not in cache:
            _, request, _ = prepared_case(adapter, clips[clip], QUESTION)
            cache[clip] = (_stock_logits(adapter, request), _stock_generate(adapter, request, N_NEW))
        return cache[clip]

    return get


def _stock_logits(ad, request) -> torch.Tensor:
    with torch.no_grad():
        return ad.model(**request.inputs, use_audio_in_video=request.use_audio_in_video).logits


def _stock_generate(ad, request, n: int) -> list[int]:
    with torch.no_grad():
        out = ad.model.generate(**request.inputs, use_audio_in_video=request.use_audio_in_video,
                                max_new_tokens=n, do_sample=False, eos_token_id=None)
    return out[0, request.inputs["input_ids"].shape[1]:].tolist()


# ------------------------------------------------------------------------------------ engine == stock model
@pytest.mark.parametrize("clip", ["sample", "silent"])
def test_prefill_equals_stock_forward(adapter, clips, stock, clip):
    media, request, encoded = prepared_case(adapter, clips[clip], QUESTION)
    assert request.use_audio_in_video == (clip == "sample")
    stock = stock(clip)[0]  # (1, S, V)
    result = engine.prefill(adapter, encoded, request.layout, None, return_hidden=True)
    with torch.no_grad():
        ours = adapter.model.lm_head(result.hidden)
    assert ours.shape == stock.shape == (1, request.layout.seq_len, adapter.text_config.vocab_size)
    assert (ours - stock).abs().max().item() <= 1e-5
    assert (result.logits - stock[0, -1].float()).abs().max().item() <= 1e-5
    # nothing dropped: every layer saw every position, and the only stage is "layer 0, everything"
    assert all(torch.equal(live, torch.arange(request.layout.seq_len)) for live in result.layer_live)
    assert len(result.layer_live) == len(adapter.layers)
    assert [layer for layer, _ in result.stage_live] == [0]


@pytest.mark.parametrize("mode", ["buffers", "static", "dynamic"])
@pytest.mark.parametrize("clip", ["sample", "silent"])
def test_greedy_decode_equals_stock_generate(adapter, clips, stock, clip, mode):
    media, request, encoded = prepared_case(adapter, clips[clip], QUESTION)
    stock = stock(clip)[1]
    assert len(stock) == N_NEW
    result = engine.prefill(adapter, encoded, request.layout, None)
    out = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[], mode=mode)
    assert out.tokens == stock and out.mode == mode


def test_auto_decode_mode_on_cpu_is_buffers(adapter):
    assert engine.decode_mode_for(adapter) == "buffers"  # a CUDA graph only on CUDA
    with pytest.raises(ValueError, match="cuda-graph needs one CUDA device"):
        engine.decode_mode_for(adapter, "cuda-graph")
    with pytest.raises(ValueError, match="one of auto, cuda-graph, compiled, static, buffers, dynamic"):
        engine.decode_mode_for(adapter, "graph")


@pytest.mark.parametrize("policy", ["survivors", "per_layer"])
def test_pruned_decode_modes_agree_with_the_stock_cache(adapter, sample_path, policy):
    """SEATS at R = 0.1: with ``per_layer`` every layer's cache has its own length (and mask); the in-place and
    static loops give the stock DynamicCache loop's tokens, and those are the masked reference's greedy tokens."""
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    runs = {}
    for mode in ("dynamic", "buffers", "static"):
        pruner, _ = build_pruner("seats", adapter.config, request.layout, trr=0.1)
        result = engine.prefill(adapter, encoded, request.layout, pruner, kv_policy=policy)
        runs[mode] = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[],
                                   mode=mode).tokens
        lengths = {lay.keys.shape[2] for lay in result.cache.layers}
    assert len(lengths) == (1 if policy == "survivors" else 5)  # Stage I, drops before 16/18/20, text from 23
    assert runs["buffers"] == runs["dynamic"] == runs["static"]
    assert len(runs["dynamic"]) == N_NEW
    kv = kv_visible_for(policy, result.layer_live)
    assert masked_reference_greedy_given(adapter, encoded, result.layer_live, kv, runs["static"]) == runs["static"]


def test_decode_stops_at_eos_and_respects_max_new_tokens(adapter, sample_path):
    media, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    result = engine.prefill(adapter, encoded, request.layout, None)
    free = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[]).tokens
    # pretend the 3rd generated token is an end-of-sequence token: decoding stops before it
    result = engine.prefill(adapter, encoded, request.layout, None)
    cut = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[free[2]]).tokens
    assert cut == free[:free.index(free[2])]
    result = engine.prefill(adapter, encoded, request.layout, None)
    one = engine.decode(adapter, result, encoded.next_position, max_new_tokens=1, eos_token_ids=[]).tokens
    assert one == free[:1]


def test_masked_reference_without_drops_is_the_stock_model(adapter, sample_path, stock):
    """The reference of tests/reference.py, with nothing hidden, is the stock model (logits and greedy)."""
    media, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    live = full_live(encoded, len(adapter.layers))
    logits, tokens = stock("sample")
    ref = masked_reference_logits(adapter, encoded, live)
    assert (ref - logits[0, -1].float()).abs().max().item() <= 1e-5
    assert masked_reference_generate(adapter, encoded, live, live, 3) == tokens[:3]
    assert masked_reference_greedy_given(adapter, encoded, live, live, tokens) == tokens


def test_eager_prefill_equals_stock_eager_forward(eager_adapter, adapter, sample_path, stock):
    media, request, encoded = prepared_case(eager_adapter, sample_path, QUESTION)
    stock_eager = _stock_logits(eager_adapter, request)
    result = engine.prefill(eager_adapter, encoded, request.layout, None, return_hidden=True)
    with torch.no_grad():
        ours = eager_adapter.model.lm_head(result.hidden)
    assert (ours - stock_eager).abs().max().item() <= 1e-5
    assert (result.logits - stock_eager[0, -1].float()).abs().max().item() <= 1e-5
    # and eager agrees with sdpa up to float rounding
    _, _, enc_sdpa = prepared_case(adapter, sample_path, QUESTION)
    sdpa = engine.prefill(adapter, enc_sdpa, request.layout, None)
    assert (sdpa.logits - result.logits).abs().max().item() <= 1e-4
    # greedy decoding with eager attention (no mask for the single new row) gives the stock greedy tokens
    ours_tokens = engine.decode(eager_adapter, result, encoded.next_position, max_new_tokens=N_NEW,
                                   eos_token_ids=[]).tokens
    assert ours_tokens == stock("sample")[1]


# ------------------------------------------------------------------------------------------ the tiny model
def test_tiny_thinker_is_deterministic_and_round_trips(tmp_path, monkeypatch, adapter, sample_path):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from seats_cli.models.tiny import build_tiny_thinker

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    first, second = build_tiny_thinker(), build_tiny_thinker()
    sd1, sd2 = first.state_dict(), second.state_dict()
    assert sd1.keys() == sd2.keys() and len(sd1) > 100
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    # the seed matters (a different seed gives different weights)
    other = build_tiny_thinker(seed=4321).state_dict()
    assert not torch.equal(sd1["lm_head.weight"], other["lm_head.weight"])

    first.save_pretrained(tmp_path)
    loaded = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tmp_path).eval()
    sd3 = loaded.state_dict()
    assert sd3.keys() == sd1.keys()
    assert all(torch.equal(sd1[k], sd3[k]) for k in sd1)

    # the session's tiny model (built into the cache folder and loaded by load_model) has the same weights
    sd4 = adapter.model.state_dict()
    assert all(torch.equal(sd1[k], sd4[k]) for k in sd1)

    _, request, _ = prepared_case(adapter, sample_path, QUESTION)
    with torch.no_grad():
        a = first(**request.inputs, use_audio_in_video=True).logits
        b = loaded(**request.inputs, use_audio_in_video=True).logits
    assert torch.equal(a, b)


def test_tiny_tokenizer_and_chat_template(adapter):
    from seats_cli.models.tiny import SPECIAL_TOKENS, build_tiny_processor

    tok = adapter.processor.tokenizer
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.convert_tokens_to_ids(t) == 256 + i
        assert tok(t, add_special_tokens=False).input_ids == [256 + i]  # never split into bytes
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok("ab\n", add_special_tokens=False).input_ids == [ord("a"), ord("b"), ord("\n")]  # byte = id
    cfg = adapter.model.config
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|VIDEO|>")
    assert cfg.audio_token_id == tok.convert_tokens_to_ids("<|AUDIO|>")
    assert adapter.eos_token_ids == sorted([tok.convert_tokens_to_ids("<|im_end|>"),
                                            tok.convert_tokens_to_ids("<|endoftext|>")])

    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "SYS"}]},
        {"role": "user", "content": [{"type": "video", "video": "x.mp4"}, {"type": "text", "text": "Q?"}]},
    ]
    text = adapter.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nSYS<|im_end|>\n"
        "<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|>Q?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # the processor written to disk renders exactly what a freshly built one does
    fresh = build_tiny_processor().apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert fresh == text


# ------------------------------------------------------------------------------------------------- layout
def test_sample_layout_by_hand(adapter, sample_path):
    media, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    layout = request.layout
    inputs = request.inputs
    # The committed clip: 448x252 (16:9) at 25 fps, 150 frames -> 6.0 s, with a mono sound track.
    assert (media.source_width, media.source_height, media.source_frames) == (448, 252, 150)
    assert media.source_fps == pytest.approx(25.0)
    assert media.duration_s == pytest.approx(6.0)
    # Frames: 6.0 s * 2 fps = 12 (even, >= 4, <= 128) -> 12 frames, sample fps 12/150*25 = 2.0.
    assert tuple(media.frames.shape) == (12, 3, 252, 448)
    assert media.sample_fps == pytest.approx(2.0)
    # Resize: 252 = 9*28 and 448 = 16*28 are already multiples of 28, and 252*448 = 112896 = 144*28^2 is
    # exactly the per-frame cap (total budget 19267584/12 is far above it) -> kept at 252x448.
    assert (media.height, media.width) == (252, 448)
    # Video grid: 12 frames / temporal patch 2 = 6 temporal grids; 252/14 = 18, 448/14 = 32 patches
    # -> 6*18*32 = 3456 patch rows; 2x2 merge -> (18/2)*(32/2) = 9*16 = 144 LLM tokens per grid
    # -> N_v = 6*144 = 864. One grid = 2 frames at 2 fps = 1 s.
    assert inputs["video_grid_thw"].tolist() == [[6, 18, 32]]
    assert tuple(inputs["pixel_values_videos"].shape) == (3456, 3 * 2 * 14 * 14)
    assert float(inputs["video_second_per_grid"].reshape(-1)[0]) == pytest.approx(1.0)
    assert layout.n_video == 864
    # Audio: 6.0 s * 16 kHz = 96000 samples -> 600 mel frames (hop 160) -> stride-2 conv: 300 ->
    # stride-2 pool: 150 tokens = 25 tokens/s.
    assert media.audio is not None and media.audio.shape[0] == 96000
    assert int(inputs["feature_attention_mask"].sum()) == 600
    assert layout.n_audio == 150
    # Windows: 2 grids (2 s, 2*144 = 288 video tokens) + 2 s of audio (2*25 = 50 tokens) each;
    # 6 s -> 3 windows.
    assert len(layout.windows) == 3
    assert [(w.video_total, w.audio_total) for w in layout.windows] == [(288, 50)] * 3
    assert [(w.start_s, w.end_s) for w in layout.windows] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    # Text: the rendered template is byte-tokenized (1 token per byte, 1 per special token); the processor
    # replaces <|VIDEO|> by <|audio_bos|> V0 A0 V1 A1 V2 A2 <|audio_eos|>: text = template tokens - 1 + 2.
    tok = adapter.processor.tokenizer
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": adapter.config.system_prompt}]},
        {"role": "user", "content": [{"type": "video", "video": "x"}, {"type": "text", "text": QUESTION}]},
    ]
    template = adapter.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    n_template = len(tok(template, add_special_tokens=False).input_ids)
    assert layout.n_text == n_template - 1 + 2
    assert layout.seq_len == 864 + 150 + layout.n_text == inputs["input_ids"].shape[1]
    # Interleaving: <|vision_bos|><|audio_bos|> V0 A0 V1 A1 V2 A2 <|audio_eos|><|vision_eos|>, contiguous.
    ids = inputs["input_ids"][0].tolist()
    w0, w1, w2 = layout.windows
    assert ids[w0.video[0] - 2:w0.video[0]] == [tok.convert_tokens_to_ids("<|vision_bos|>"),
                                                tok.convert_tokens_to_ids("<|audio_bos|>")]
    assert w0.video[1] == w0.audio[0] and w0.audio[1] == w1.video[0]
    assert w1.video[1] == w1.audio[0] and w1.audio[1] == w2.video[0] and w2.video[1] == w2.audio[0]
    assert ids[w2.audio[1]:w2.audio[1] + 2] == [tok.convert_tokens_to_ids("<|audio_eos|>"),
                                                tok.convert_tokens_to_ids("<|vision_eos|>")]
    mod = layout.modality
    for w in layout.windows:
        assert bool((mod[w.video[0]:w.video[1]] == VIDEO).all()) and bool((mod[w.audio[0]:w.audio[1]] == AUDIO).all())
    assert int((mod == TEXT).sum()) == layout.n_text
    # The query (last prompt token) is the newline after "assistant".
    assert ids[layout.query_index] == ord("\n") and layout.query_index == layout.seq_len - 1
    # Decoding continues after the largest prompt position id.
    assert encoded.next_position == int(encoded.position_ids.max()) + 1
    assert tuple(encoded.position_ids.shape) == (3, 1, layout.seq_len)


def test_silent_clip_layout(adapter, silent_clip):
    media, request, encoded = prepared_case(adapter, silent_clip, QUESTION)
    layout = request.layout
    # 4 s at 2 fps = 8 frames = 4 grids of 1 s; no audio track -> 2 video-only windows of 2 grids each.
    assert media.audio is None or len(media.audio) == 0
    assert not request.use_audio_in_video and "input_features" not in request.inputs
    t, h, w = request.inputs["video_grid_thw"][0].tolist()
    assert t == 4
    per_grid = (h // 2) * (w // 2)
    assert layout.n_audio == 0 and layout.n_video == 4 * per_grid
    assert [(x.video_total, x.audio_total) for x in layout.windows] == [(2 * per_grid, 0)] * 2
    assert encoded.audio_saliency is None and encoded.video_saliency.shape == (4 * per_grid,)


# --------------------------------------------------------------------------------------- encoder saliency
def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _brute_force_received(q: torch.Tensor, k: torch.Tensor, segments: list[tuple[int, int]], scale: float):
    """q, k: (N, heads, d) float64. Per segment and head: softmax(q k^T * scale) over the segment, then the
    mean over heads, summed over the query rows (the attention each column receives)."""
    n, heads, _ = q.shape
    received = torch.zeros(n, dtype=torch.float64)
    probs = []
    for s, e in segments:
        mean = torch.zeros(e - s, e - s, dtype=torch.float64)
        for h in range(heads):
            mean += torch.softmax(q[s:e, h] @ k[s:e, h].T * scale, dim=-1)
        mean /= heads
        received[s:e] = mean.sum(dim=0)
        probs.append(mean)
    return received, probs


def _raster_order_of_window_order(t: int, llm_h: int, llm_w: int, win: int) -> list[int]:
    """window_order[i] = raster index (t, y, x) of the i-th merge unit as the vision encoder orders them:
    per temporal grid, windows of win x win merge units row by row, units inside a window row by row."""
    order = []
    for g in range(t):
        for wy in range(0, llm_h, win):
            for wx in range(0, llm_w, win):
                for y in range(wy, min(wy + win, llm_h)):
                    for x in range(wx, min(wx + win, llm_w)):
                        order.append(g * llm_h * llm_w + y * llm_w + x)
    return order


@pytest.mark.parametrize("span", ["official", "encoder"])
def test_video_saliency_equals_brute_force(adapter, sample_path, span):
    """official: the statistic over each Stage I window's patches (2 temporal grids, which the block itself
    never attends across); encoder: the block's own per-grid span."""
    _, request, _ = prepared_case(adapter, sample_path, QUESTION)
    encoded = adapter.encode(request, saliency=span)
    visual = adapter.model.model.visual
    block = visual.blocks[-1]
    seen = {}

    def pre(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["cos"], seen["sin"] = (x.detach().clone() for x in kwargs["position_embeddings"])
        seen["cu_seqlens"] = kwargs["cu_seqlens"].tolist()

    def post(module, args, kwargs, output):
        seen["attn_out"] = output.detach().clone()

    handles = [block.register_forward_pre_hook(pre, with_kwargs=True),
               block.attn.register_forward_hook(post, with_kwargs=True)]
    try:
        with torch.no_grad():
            adapter.model.model.get_video_features(request.inputs["pixel_values_videos"],
                                                   request.inputs["video_grid_thw"])
    finally:
        for h in handles:
            h.remove()

    t, gh, gw = request.inputs["video_grid_thw"][0].tolist()  # 6, 18, 32
    per_grid = gh * gw  # 576 patches per temporal grid
    # The last block of the tiny encoder (like block 31 of the 7B) is a full-attention block: its spans are
    # the temporal grids.
    assert block is visual.blocks[visual.fullatt_block_indexes[-1]]
    segments = [(g * per_grid, (g + 1) * per_grid) for g in range(t)]
    assert seen["cu_seqlens"] == [0] + [e for _, e in segments]
    stat_spans = segments if span == "encoder" else [(g * per_grid, (g + 2) * per_grid) for g in range(0, t, 2)]

    attn = block.attn
    heads, d = attn.num_heads, attn.head_dim
    with torch.no_grad():
        x = block.norm1(seen["hidden"]).double()
        n = x.shape[0]
        q = torch.nn.functional.linear(x, attn.q.weight.double(), attn.q.bias.double()).view(n, heads, d)
        k = torch.nn.functional.linear(x, attn.k.weight.double(), attn.k.bias.double()).view(n, heads, d)
        v = torch.nn.functional.linear(x, attn.v.weight.double(), attn.v.bias.double()).view(n, heads, d)
        cos, sin = seen["cos"].double()[:, None], seen["sin"].double()[:, None]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        per_patch, _ = _brute_force_received(q, k, stat_spans, d ** -0.5)

        # my recomputation is the block's own attention: rebuild its output from per-head probabilities
        out = torch.zeros(n, heads, d, dtype=torch.float64)
        for s, e in segments:
            for h in range(heads):
                p = torch.softmax(q[s:e, h] @ k[s:e, h].T * d ** -0.5, dim=-1)
                out[s:e, h] = p @ v[s:e, h]
        out = torch.nn.functional.linear(out.reshape(n, heads * d), attn.proj.weight.double(), attn.proj.bias.double())
        assert (out - seen["attn_out"].double()).abs().max().item() <= 1e-4

    # each query row's softmax sums to 1, so the column sums of a span of length n sum to n
    for s, e in stat_spans:
        assert per_patch[s:e].sum().item() == pytest.approx(e - s, rel=1e-9)

    # mean over the 4 patches of each 2x2 merge unit (consecutive in the encoder's order), then raster order
    unit = visual.spatial_merge_size ** 2
    per_unit = per_patch.view(-1, unit).mean(dim=1)
    win = visual.window_size // visual.spatial_merge_size // visual.patch_size  # 112 / 2 / 14 = 4
    order = _raster_order_of_window_order(t, gh // 2, gw // 2, win)
    assert sorted(order) == list(range(per_unit.numel()))
    expected = torch.empty_like(per_unit)
    expected[torch.tensor(order)] = per_unit

    got = encoded.video_saliency
    assert got is not None and got.shape == (request.layout.n_video,) == (t * per_grid // unit,)
    assert (got.double() - expected).abs().max().item() <= 1e-5
    # per stat span the merged values sum to its patches / 4 (144 per grid, 288 per 2-grid window)
    for s, e in stat_spans:
        assert got[s // unit:e // unit].double().sum().item() == pytest.approx((e - s) / unit, rel=1e-5)
    if span == "official":  # across grids: differs from the per-grid statistic
        per_grid_stat = adapter.encode(request, saliency="encoder").video_saliency
        assert (got - per_grid_stat).abs().max().item() > 1e-3
    # not degenerate: the tiny model's attention is far from uniform (Stage I can tell tokens apart)
    assert got.std().item() > 1e-3


@pytest.mark.parametrize("span", ["official", "encoder"])
def test_audio_saliency_equals_brute_force(adapter, sample_path, span):
    """On Qwen2.5 the Stage I window's 100 pre-pool tokens are the encoder's own 2-s chunks: both spans agree."""
    _, request, _ = prepared_case(adapter, sample_path, QUESTION)
    encoded = adapter.encode(request, saliency=span)
    tower = adapter.model.model.audio_tower
    layer = tower.layers[-1]
    seen = {}

    def pre(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["cu_seqlens"] = kwargs["cu_seqlens"].tolist()

    handle = layer.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            adapter.model.model.get_audio_features(request.inputs["input_features"],
                                                   request.inputs["feature_attention_mask"])
    finally:
        handle.remove()

    # 600 mel frames in chunks of n_window*2 = 200 frames (2 s) -> after the stride-2 conv 3 spans of 100
    mel = int(request.inputs["feature_attention_mask"].sum())
    chunk = 2 * tower.n_window
    spans, start = [], 0
    for c in range(0, mel, chunk):
        length = (min(chunk, mel - c) - 1) // 2 + 1
        spans.append((start, start + length))
        start += length
    assert spans == [(0, 100), (100, 200), (200, 300)]
    assert seen["cu_seqlens"] == [0] + [e for _, e in spans]

    attn = layer.self_attn
    heads, d = attn.num_heads, attn.head_dim
    with torch.no_grad():
        x = layer.self_attn_layer_norm(seen["hidden"]).double()
        n = x.shape[0]
        q = torch.nn.functional.linear(x, attn.q_proj.weight.double(), attn.q_proj.bias.double()).view(n, heads, d)
        k = torch.nn.functional.linear(x, attn.k_proj.weight.double()).view(n, heads, d)  # k_proj has no bias
        per_frame, _ = _brute_force_received(q, k, spans, d ** -0.5)
    for s, e in spans:
        assert per_frame[s:e].sum().item() == pytest.approx(e - s, rel=1e-9)
    # the encoder pools consecutive pairs (0,1), (2,3), ... to 25 tokens/s
    expected = per_frame.view(-1, 2).mean(dim=1)
    got = encoded.audio_saliency
    assert got is not None and got.shape == (150,) == (request.layout.n_audio,)
    assert (got.double() - expected).abs().max().item() <= 1e-5
    for j in range(3):  # one 2 s window of 50 tokens = one span of 100 frames -> sums to 50
        assert got[j * 50:(j + 1) * 50].double().sum().item() == pytest.approx(50.0, rel=1e-5)


def _last_block_qk(adapter, request):
    """q, k (N, heads, d) in float64, after rotary, of the last ViT block, recomputed here from its input."""
    block = adapter.model.model.visual.blocks[-1]
    seen = {}

    def pre(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        seen["cos"], seen["sin"] = (x.detach().clone() for x in kwargs["position_embeddings"])

    handle = block.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            adapter.model.model.get_video_features(request.inputs["pixel_values_videos"],
                                                   request.inputs["video_grid_thw"])
    finally:
        handle.remove()
    attn = block.attn
    heads, d = attn.num_heads, attn.head_dim
    with torch.no_grad():
        x = block.norm1(seen["hidden"]).double()
        n = x.shape[0]
        q = torch.nn.functional.linear(x, attn.q.weight.double(), attn.q.bias.double()).view(n, heads, d)
        k = torch.nn.functional.linear(x, attn.k.weight.double(), attn.k.bias.double()).view(n, heads, d)
        cos, sin = seen["cos"].double()[:, None], seen["sin"].double()[:, None]
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def test_frame_query_attention_equals_brute_force(adapter, sample_path):
    """FastVID's signal: per temporal grid, the mean of the grid's queries attends (per head) to the grid's
    merge-unit mean keys; mean over heads; per LLM token in raster order."""
    _, request, _ = prepared_case(adapter, sample_path, QUESTION)
    encoded = adapter.encode(request, extra=frozenset({"video_frame_query"}))
    assert encoded.video_saliency is None and encoded.audio_whole is None  # only what was asked for
    q, k = _last_block_qk(adapter, request)
    visual = adapter.model.model.visual
    t, gh, gw = request.inputs["video_grid_thw"][0].tolist()
    per_grid, unit = gh * gw, visual.spatial_merge_size ** 2
    heads, d = q.shape[1], q.shape[2]
    per_unit = []
    for g in range(t):
        rows = slice(g * per_grid, (g + 1) * per_grid)
        q_bar = q[rows].mean(dim=0)  # (heads, d)
        k_bar = k[rows].reshape(per_grid // unit, unit, heads, d).mean(dim=1)  # (units, heads, d)
        p = torch.zeros(per_grid // unit, dtype=torch.float64)
        for h in range(heads):
            p += torch.softmax(k_bar[:, h] @ q_bar[h] * d ** -0.5, dim=0)
        per_unit.append(p / heads)
    per_unit = torch.cat(per_unit)
    win = visual.window_size // visual.spatial_merge_size // visual.patch_size
    expected = torch.empty_like(per_unit)
    expected[torch.tensor(_raster_order_of_window_order(t, gh // 2, gw // 2, win))] = per_unit
    got = encoded.video_frame_query
    assert got.shape == (request.layout.n_video,)
    assert (got.double() - expected).abs().max().item() <= 1e-6
    for g in range(t):  # a softmax per grid: each grid's 144 values sum to 1
        assert got[g * 144:(g + 1) * 144].double().sum().item() == pytest.approx(1.0, rel=1e-5)


def test_whole_audio_attention_equals_brute_force(adapter, sample_path):
    """OmniZip's signal: the attention received over the whole clip's audio (no 2-s chunk mask), pair-pooled."""
    _, request, _ = prepared_case(adapter, sample_path, QUESTION)
    encoded = adapter.encode(request, saliency="official", extra=frozenset({"audio_whole"}))
    layer = adapter.model.model.audio_tower.layers[-1]
    seen = {}
    handle = layer.register_forward_pre_hook(
        lambda m, a, kw: seen.update(hidden=(a[0] if a else kw["hidden_states"]).detach().clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            adapter.model.model.get_audio_features(request.inputs["input_features"],
                                                   request.inputs["feature_attention_mask"])
    finally:
        handle.remove()
    attn = layer.self_attn
    heads, d = attn.num_heads, attn.head_dim
    with torch.no_grad():
        x = layer.self_attn_layer_norm(seen["hidden"]).double()
        n = x.shape[0]
        q = torch.nn.functional.linear(x, attn.q_proj.weight.double(), attn.q_proj.bias.double()).view(n, heads, d)
        k = torch.nn.functional.linear(x, attn.k_proj.weight.double()).view(n, heads, d)
    per_frame, _ = _brute_force_received(q, k, [(0, n)], d ** -0.5)
    expected = per_frame.view(-1, 2).mean(dim=1)
    got = encoded.audio_whole
    assert got.shape == (150,) and (got.double() - expected).abs().max().item() <= 1e-5
    assert got.double().sum().item() == pytest.approx(n / 2, rel=1e-5)  # 300 rows, pooled in pairs
    assert (got - encoded.audio_saliency).abs().max().item() > 1e-3  # not the chunked statistic


def test_kv_buffers_copy_the_cache_and_zero_the_room_for_the_answer():
    from transformers import DynamicCache

    from seats_cli.kvcache import KVBuffers

    cache = DynamicCache()
    k0, v0 = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    k1, v1 = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache.update(k0, v0, 0)
    cache.update(k1, v1, 1)
    buf = KVBuffers(cache, 4)
    assert buf.base == [5, 3] and buf.capacity == [9, 7]
    assert torch.equal(buf.keys[0][:, :, :5], k0) and torch.equal(buf.values[1][:, :, :3], v1)
    # the unwritten rows are read (masked) by the static step: they must not hold stale memory such as NaN
    assert all(int(t[:, :, n:].count_nonzero()) == 0 for t, n in zip(buf.keys + buf.values, buf.base * 2))
    new = torch.ones(1, 2, 1, 4)
    k, v = buf.update(new, new, 1)  # buffers mode: a view of the rows written so far
    assert k.shape[2] == 4 and torch.equal(k[:, :, 3:], new) and torch.equal(k[:, :, :3], k1)
    buf.static(torch.device("cpu"))
    buf.step += 2
    k, v = buf.update(new * 2, new * 2, 0)  # static mode: row base + step, the whole buffer returned
    assert k.shape[2] == 9 and torch.equal(k[:, :, 7:8], new * 2)
    masks = buf.masks(torch.float32)
    assert masks[0].shape == (1, 1, 1, 9) and masks[1].shape == (1, 1, 1, 7)
    assert (masks[0][0, 0, 0] == 0).tolist() == [True] * 8 + [False]  # rows <= base + step = 7
    assert (masks[1][0, 0, 0] == 0).tolist() == [True] * 6 + [False]


needs_cxx = pytest.mark.skipif(
    not (__import__("shutil").which("g++") or __import__("shutil").which("c++")),
    reason="torch.compile on the CPU needs a C++ compiler")


@needs_cxx
def test_compiled_decode_gives_stock_tokens_and_reuses_its_graph(adapter, clips, stock, sample_path):
    """decode_mode compiled: torch.compile'd step, the stock generate()'s tokens; a second request of the same
    rounded capacity compiles nothing new; SEATS under per_layer (5 cache lengths) gives the stock loop's tokens."""
    from torch._dynamo.utils import counters

    _, request, encoded = prepared_case(adapter, clips["sample"], QUESTION)
    runs = []
    for _ in range(2):
        result = engine.prefill(adapter, encoded, request.layout, None)
        before = counters["stats"]["unique_graphs"]
        out = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[],
                            mode="compiled")
        runs.append((out.tokens, out.mode, counters["stats"]["unique_graphs"] - before))
    assert runs[0][0] == runs[1][0] == stock("sample")[1] and runs[0][1] == "compiled"
    assert runs[0][2] >= 1 and runs[1][2] == 0  # compiled once, then reused
    got = {}
    for mode in ("compiled", "dynamic"):
        pruner, _ = build_pruner("seats", adapter.config, request.layout, trr=0.1)
        result = engine.prefill(adapter, encoded, request.layout, pruner, kv_policy="per_layer")
        got[mode] = engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[],
                                  mode=mode).tokens
    assert got["compiled"] == got["dynamic"]


def test_compiled_decode_falls_back_once_compiling_fails(adapter, clips, stock, monkeypatch):
    """A compiler that fails (none installed, an inductor error) costs one note, not the answer: the stock tokens
    from the in-place loop, and later requests do not try again."""
    import seats_cli.kvcache as kv

    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(kv, "_compiled_core", broken)
    monkeypatch.setattr(kv, "COMPILE_FAILED", None)
    _, request, encoded = prepared_case(adapter, clips["sample"], QUESTION)
    outs = []
    for _ in range(2):
        result = engine.prefill(adapter, encoded, request.layout, None)
        outs.append(engine.decode(adapter, result, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[],
                                  mode="compiled"))
    assert [o.mode for o in outs] == ["buffers", "buffers"] and len(calls) == 1
    assert "no C++ compiler found" in outs[0].note and "failed earlier" in outs[1].note
    assert outs[0].tokens == outs[1].tokens == stock("sample")[1]


def test_compiled_decode_buffers_round_up_and_stay_masked():
    from transformers import DynamicCache

    from seats_cli.kvcache import KVBuffers

    cache = DynamicCache()
    cache.update(torch.randn(1, 2, 300, 4), torch.randn(1, 2, 300, 4), 0)
    cache.update(torch.randn(1, 2, 40, 4), torch.randn(1, 2, 40, 4), 1)
    buf = KVBuffers(cache, 9, round_to=256)
    assert buf.base == [300, 40] and buf.capacity == [512, 256]
    buf.static(torch.device("cpu"))
    masks = buf.masks(torch.float32)
    assert int((masks[0] == 0).sum()) == 301 and int((masks[1] == 0).sum()) == 41  # rows <= base + step 0


def test_flash_attention_never_gets_the_static_decode_mask(adapter):
    """The static/graph step passes an additive (1, 1, 1, capacity) mask; with flash-attention the loop stays on
    in-place buffers (no mask), and asking for the masked step is refused."""
    from types import SimpleNamespace

    def fake(device, attn, graphable=True, device_map=None):
        arch = SimpleNamespace(cuda_graph_decode=graphable)
        return SimpleNamespace(device=torch.device(device), attn_implementation=attn,
                               config=SimpleNamespace(name="x", architecture=arch),
                               model=SimpleNamespace(hf_device_map=device_map))

    assert engine.decode_mode_for(fake("cuda", "sdpa")) == "cuda-graph"
    assert engine.decode_mode_for(fake("cuda", "eager")) == "cuda-graph"
    assert engine.decode_mode_for(fake("cuda", "flash_attention_2")) == "buffers"
    assert engine.decode_mode_for(fake("cuda", "sdpa", graphable=False)) == "buffers"  # Qwen3-Omni's MoE
    assert engine.decode_mode_for(fake("cuda", "sdpa", device_map={"a": 0, "b": 1})) == "buffers"
    with pytest.raises(ValueError, match="sdpa or eager attention only"):
        engine.decode_mode_for(fake("cuda", "flash_attention_2"), "static")
    assert engine.decode_mode_for(adapter, "static") == "static"
