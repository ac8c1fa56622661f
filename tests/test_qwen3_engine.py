"""Qwen3-Omni on the offline `tiny-qwen3` thinker (48 layers, MoE, DeepStack): our prefill loop equals the stock
forward, greedy decoding equals stock `generate()`, SEATS equals the masked reference (DeepStack rows of dropped
tokens gone) under both KV policies, the Stage II scores equal the stock attention weights, and a silent clip, a
1-fps clip and the baselines run."""

from __future__ import annotations

import pytest
import torch

from reference import (kv_visible_for, masked_reference_greedy_given, masked_reference_logits, prepared_case,
                       write_clip)
from seats_cli import engine
from seats_cli.methods import build_pruner

QUESTION = "What is moving?"
N_NEW = 8


@pytest.fixture(scope="module")
def adapter(seats_cache):
    from seats_cli.models import load_model

    torch.manual_seed(0)
    return load_model("tiny-qwen3", device="cpu", dtype="float32", cache_dir=seats_cache)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("q3")
    return {"silent": write_clip(d / "silent.mp4", seconds=4.0, fps=10, audio=False),
            "sound": write_clip(d / "sound.mp4", seconds=4.0, fps=10, audio=True)}


def _stock_inputs(request):
    inp = request.inputs
    keys = ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "input_features",
            "feature_attention_mask", "video_second_per_grid")
    return {k: inp[k] for k in keys if k in inp}


@pytest.mark.parametrize("which", ["sample", "silent"])
def test_prefill_equals_the_stock_forward(adapter, sample_path, clips, which, one_thread):
    path = sample_path if which == "sample" else clips["silent"]
    _, request, encoded = prepared_case(adapter, path, QUESTION)
    with torch.no_grad():
        stock = adapter.model(**_stock_inputs(request), use_audio_in_video=request.use_audio_in_video).logits[0, -1]
    ours = engine.prefill(adapter, encoded, request.layout)
    assert encoded.deepstack and len(encoded.deepstack) == 3  # DeepStack after decoder layers 0, 1, 2
    assert (ours.logits - stock.float()).abs().max().item() <= 1e-5
    # without DeepStack the loop would be off: the check has teeth
    plain = type(encoded)(**{**encoded.__dict__, "deepstack": ()})
    assert (engine.prefill(adapter, plain, request.layout).logits - stock.float()).abs().max().item() > 1e-4


@pytest.mark.parametrize("mode", ["buffers", "static"])
def test_greedy_decode_equals_stock_generate(adapter, sample_path, one_thread, mode):
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    ours = engine.prefill(adapter, encoded, request.layout)
    tokens = engine.decode(adapter, ours, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[],
                           mode=mode).tokens
    assert isinstance(encoded.next_position, float)  # float positions continue as floats
    with torch.no_grad():
        out = adapter.model.generate(**_stock_inputs(request), use_audio_in_video=request.use_audio_in_video,
                                     max_new_tokens=N_NEW, min_new_tokens=N_NEW, do_sample=False)
    assert tokens == out[0, request.inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("trr", [0.35, 0.1])
@pytest.mark.parametrize("policy", ["survivors", "per_layer"])
def test_seats_equals_the_masked_reference(adapter, sample_path, trr, policy, one_thread):
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    layout = request.layout
    pruner, plan = build_pruner("seats", adapter.config, layout, trr=trr)
    res = engine.prefill(adapter, encoded, layout, pruner, kv_policy=policy)
    live = res.layer_live
    # the Qwen3 schedule ran: Stage I before layer 0, drops at 27/31/35, text only from 39
    assert [layer for layer, _ in res.stage_live] == [0, 27, 31, 35, 39]
    ref = masked_reference_logits(adapter, encoded, live)
    assert (res.logits - ref).abs().max().item() <= 1e-4
    tokens = engine.decode(adapter, res, encoded.next_position, max_new_tokens=N_NEW, eos_token_ids=[]).tokens
    assert masked_reference_greedy_given(adapter, encoded, live, kv_visible_for(policy, live), tokens) == tokens


def test_stage2_scores_equal_the_stock_attention_weights(adapter, sample_path, one_thread):
    """Our query row (layer l's norm, q/k projections, q/k norms before rotary) equals the stock eager attention
    weights of the last position, averaged over heads."""
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    layer_idx = 27
    hidden = encoded.embeds
    cos, sin = adapter.rotary(hidden, encoded.position_ids)
    with torch.no_grad():
        for idx in range(layer_idx):
            hidden = adapter.layers[idx](hidden, attention_mask=None, position_embeddings=(cos, sin))
            hidden = adapter.after_layer(idx, hidden, torch.arange(hidden.shape[1]), encoded)
        layer = adapter.layers[layer_idx]
        attn = layer.self_attn
        before = attn.config._attn_implementation
        attn.config._attn_implementation = "eager"
        try:
            s = hidden.shape[1]
            mask = torch.full((s, s), torch.finfo(hidden.dtype).min).triu(1)[None, None]
            _, weights = attn(layer.input_layernorm(hidden), position_embeddings=(cos, sin), attention_mask=mask)
        finally:
            attn.config._attn_implementation = before
    stock = weights[0, :, -1, :].mean(dim=0)
    ours = adapter.query_scores(layer_idx, hidden, cos, sin, hidden.shape[1] - 1)
    assert (ours - stock.float()).abs().max().item() <= 1e-6


def test_a_1_fps_clip_and_the_baselines_run(adapter, clips, one_thread):
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy

    media = decode_video(clips["sound"], frame_policy(adapter.config, fps=1.0))
    request = adapter.prepare(media, QUESTION)
    encoded = adapter.encode(request, saliency="official", extra=frozenset({"audio_whole", "video_frame_query"}))
    layout = request.layout
    # 64x48 frames -> 320x448 (factor 32) -> 10 x 14 = 140 tokens per grid; 4 frames at 1 fps -> 2 grids of
    # 2 s, 52 audio tokens: runs V140 A26 V140 A26 (grid time ids 26 apart)
    assert [(w.video_total, w.audio_total) for w in layout.windows] == [(140, 26), (140, 26)]
    for method in ("seats", "random", "divprune", "fastv", "fastv-om", "dycoke", "visionzip", "visionzip-om",
                   "omnizip", "fastvid"):
        pruner, _ = build_pruner(method, adapter.config, layout, trr=0.25)
        res = engine.prefill(adapter, encoded, layout, pruner)
        tokens = engine.decode(adapter, res, encoded.next_position, max_new_tokens=2, eos_token_ids=[]).tokens
        assert len(tokens) == 2 and torch.isfinite(res.logits).all(), method
        if method == "fastv":  # drop before layer 2: DeepStack rows of layer 2 go only to surviving video rows
            ref = masked_reference_logits(adapter, encoded, res.layer_live)
            assert (res.logits - ref).abs().max().item() <= 1e-4


def test_ask_tiny_qwen3_through_the_cli(sample_path):
    import json

    from typer.testing import CliRunner

    from seats_cli.cli import app

    res = CliRunner().invoke(app, ["ask", str(sample_path), QUESTION, "--model", "tiny-qwen3", "--device", "cpu",
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # 6 s: 12 frames at 288x512 -> 6 grids of 144 tokens; 6 s x 13 = 78 audio tokens; runs V144 A13 x 6
    assert (out["tokens"]["video"], out["tokens"]["audio"]) == (864, 78)
    assert [(w["video_total"], w["audio_total"]) for w in out["windows"]] == [(144, 13)] * 6
    # Stage I windows 2 grids / 26 tokens; TRR 0.35 -> (0.32, 0.70) -> rho (0.448, 0.98): 129 of 288, 25 of 26
    s1 = out["stage1_windows"]
    assert (s1["video"]["window"], s1["audio"]["window"]) == (288, 26)
    assert (s1["video"]["kept"], s1["audio"]["kept"]) == ([129] * 3, [25] * 3)
    assert [w["kept"][k]["layer"] for w in out["windows"][:1] for k in range(5)] == [0, 27, 31, 35, 39]
    assert all(r["video"] == r["audio"] == 0 for r in out["layers"][39:])


def test_processor_fps_official_gives_the_authors_runs(adapter, sample_path, one_thread):
    """``--processor-fps official`` tells the processor no fps, as the authors' wrappers: it assumes 1 fps, so each
    2-frame grid spans 2 s of its time and the runs are V144 A26 (SEATS_SPEC §7.6), the 6 grids outrunning the 6 s
    of sound (a video-only run at the end); the sampled frames, the tokens and Stage I stay the same."""
    from seats_cli.api import Seats

    seats = Seats.from_adapter(adapter)
    runs = {}
    for told in ("sampled", "official"):
        r = seats.ask(sample_path, QUESTION, processor_fps=told, max_new_tokens=1)
        assert r.media["processor_fps"] == told and r.media["frames"] == 12
        assert (r.tokens["video"], r.tokens["audio"]) == (864, 78)
        runs[told] = [(w.video_total, w.audio_total, w.start_s, w.end_s) for w in r.windows]
        runs[told + " stage I"] = r.stage1_windows
    assert runs["sampled"] == [(144, 13, float(j), float(j + 1)) for j in range(6)]
    assert runs["official"] == [(144, 26, 0.0, 2.0), (144, 26, 2.0, 4.0), (144, 26, 4.0, 6.0), (432, 0, 6.0, 12.0)]
    assert runs["sampled stage I"] == runs["official stage I"]
    # media decoded by the caller, told otherwise by the request: one retold copy, reused by the next question
    media = seats.decode(sample_path)
    first = seats.ask(media, QUESTION, processor_fps="official", max_new_tokens=1)
    again = seats.ask(media, "And the sound?", processor_fps="official", max_new_tokens=1)
    assert first.media["processor_fps"] == again.media["processor_fps"] == "official"
    assert again.reused == {"decode": True, "encoders": True, "prefetched": False}


@pytest.mark.parametrize("args, line", [
    (["--device-map", "balanced"], "error: --device-map 'balanced' is not one of: auto"),
    (["--device", "cpu", "--device-map", "auto"],
     "error: --device-map auto spreads a model over GPUs; it cannot be used with --device cpu"),
])
def test_device_map_errors_before_loading(sample_path, args, line):
    from typer.testing import CliRunner

    from seats_cli.cli import app

    res = CliRunner().invoke(app, ["ask", str(sample_path), QUESTION, "--model", "tiny-qwen3", *args])
    assert res.exit_code == 2 and res.stderr.strip() == line


@pytest.mark.parametrize("mode", ["buffers", "static", "dynamic"])
def test_decode_continues_from_a_fractional_position(adapter, clips, mode, one_thread):
    """SEATS_SPEC 7.3 / 7.9: sampled at 3 fps a grid spans 2/3 s, so the largest prompt position is fractional and
    decoding continues at max + 1 + t as floats: every step's logits equal stock generate()'s. Decoding from
    int(max) + 1 (what a long cast gives) moves them by 0.65 on this model, while the tokens (the tiny model repeats
    one) could not tell."""
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy

    request = adapter.prepare(decode_video(clips["silent"], frame_policy(adapter.config, fps=3.0)), QUESTION)
    encoded = adapter.encode(request)
    assert isinstance(encoded.next_position, float) and encoded.next_position != int(encoded.next_position)
    seen = []
    hook = adapter.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.reshape(-1, o.shape[-1])[-1]))
    try:
        res = engine.prefill(adapter, encoded, request.layout)
        engine.decode(adapter, res, encoded.next_position, max_new_tokens=4, eos_token_ids=[], mode=mode)
        ours = list(seen)
    finally:
        hook.remove()
    with torch.no_grad():
        out = adapter.model.generate(**_stock_inputs(request), use_audio_in_video=request.use_audio_in_video,
                                     max_new_tokens=4, min_new_tokens=4, do_sample=False, output_logits=True,
                                     return_dict_in_generate=True)
    assert len(ours) == len(out.logits) == 4
    for k, (a, b) in enumerate(zip(ours, out.logits)):
        assert (a.float() - b[0].float()).abs().max().item() <= 1e-4, k


def test_the_experts_kernel_is_named_by_the_preset(adapter, seats_cache, sample_path, one_thread):
    """SEATS_SPEC 7.1: the experts kernel is the preset's (grouped_mm), not whatever the library defaults to; another
    one named in a config loads as named, and per token the MoE block gives the same prefill (CPU, fp32)."""
    import dataclasses

    from seats_cli.config import ConfigError
    from seats_cli.models import load_model

    arch = adapter.config.architecture
    assert arch.experts_implementation == "grouped_mm"
    assert adapter.model.config.get_text_config()._experts_implementation == "grouped_mm"
    cfg = dataclasses.replace(adapter.config, architecture=dataclasses.replace(arch, experts_implementation="eager"))
    eager = load_model("tiny-qwen3", config=cfg, device="cpu", dtype="float32", cache_dir=seats_cache)
    assert eager.model.config.get_text_config()._experts_implementation == "eager"
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    a = engine.prefill(adapter, encoded, request.layout).logits
    b = engine.prefill(eager, encoded, request.layout).logits
    assert (a - b).abs().max().item() <= 1e-5
    with pytest.raises(ConfigError, match="experts_implementation must be grouped_mm, batched_mm or eager"):
        dataclasses.replace(arch, experts_implementation="fast")


@pytest.mark.parametrize("attn, dtype", [("sdpa", "float32"), ("eager", "float32"), ("sdpa", "bfloat16")])
def test_prefill_equals_the_stock_forward_at_every_position(seats_cache, sample_path, attn, dtype, one_thread):
    """SEATS_SPEC 7.9: our layer loop's logits at every prompt position are the stock thinker's, bit for bit, under
    sdpa and eager in fp32 and sdpa in bf16."""
    from seats_cli.media import decode_video
    from seats_cli.models import load_model
    from seats_cli.request import frame_policy

    ad = load_model("tiny-qwen3", device="cpu", dtype=dtype, attn_implementation=attn, cache_dir=seats_cache)
    request = ad.prepare(decode_video(sample_path, frame_policy(ad.config)), QUESTION)
    encoded = ad.encode(request)
    res = engine.prefill(ad, encoded, request.layout, return_hidden=True)
    with torch.no_grad():
        stock = ad.model(**_stock_inputs(request), use_audio_in_video=request.use_audio_in_video).logits
        ours = ad.model.lm_head(res.hidden)
    assert ours.shape == stock.shape and torch.equal(ours, stock)


def test_a_pre_llm_drop_equals_the_stock_text_model_on_the_pruned_inputs(adapter, sample_path, one_thread):
    """SEATS_SPEC 7.9: dropping video rows before layer 0 equals the stock text model run on the pruned inputs
    (embeddings, position ids, the visual mask and the DeepStack rows of the kept video tokens), bit for bit."""
    _, request, encoded = prepared_case(adapter, sample_path, QUESTION)
    layout = request.layout
    video = (layout.modality == 1).nonzero().flatten()
    kept_video = video[torch.randperm(video.numel(), generator=torch.Generator().manual_seed(3))[:172]].sort().values
    keep = torch.cat([(layout.modality != 1).nonzero().flatten(), kept_video]).sort().values

    class Drop:
        name, drop_layers = "drop", frozenset()

        def before_llm(self, *args):
            return keep

        def at_layer(self, *args):
            return None

    res = engine.prefill(adapter, encoded, layout, Drop(), return_hidden=True)
    rank = torch.cumsum((layout.modality == 1).long(), 0) - 1  # a video token's index among the video tokens
    with torch.no_grad():
        stock = adapter.model.model.language_model(
            inputs_embeds=encoded.embeds[:, keep], position_ids=encoded.position_ids[..., keep],
            visual_pos_masks=(layout.modality[keep] == 1)[None], use_cache=False,
            deepstack_visual_embeds=[f[rank[kept_video]] for f in encoded.deepstack]).last_hidden_state
    assert res.layer_live[0].tolist() == keep.tolist()
    assert stock.shape == res.hidden.shape and torch.equal(res.hidden, stock)
    # the DeepStack rows matter: the kept rows' features taken in another order give other states
    with torch.no_grad():
        other = adapter.model.model.language_model(
            inputs_embeds=encoded.embeds[:, keep], position_ids=encoded.position_ids[..., keep],
            visual_pos_masks=(layout.modality[keep] == 1)[None], use_cache=False,
            deepstack_visual_embeds=[f[rank[kept_video].flip(0)] for f in encoded.deepstack]).last_hidden_state
    assert not torch.equal(res.hidden, other)


def test_a_clip_without_sound_is_reported_in_2_s_windows(adapter, clips):
    """SEATS_SPEC §1: video-only windows, one per 2 s. The processor gives a silent clip one video run; the layout
    reports it per 2 grids (1 s each at 2 fps), the analytic shape (seats profile) the same, and Stage II still
    sees one run (its global top-K), so the selection is unchanged."""
    from seats_cli.measure import layout_matches
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy
    from seats_cli.shape import shape_from_media

    media = decode_video(clips["silent"], frame_policy(adapter.config))
    layout = adapter.prepare(media, QUESTION).layout
    per_grid = layout.tokens_per_grid
    assert [(w.video_total, w.audio_total, w.start_s, w.end_s) for w in layout.windows] == [
        (2 * per_grid, 0, 0.0, 2.0), (2 * per_grid, 0, 2.0, 4.0)]
    assert layout_matches(shape_from_media(media, adapter.config, n_text=layout.n_text), layout)
