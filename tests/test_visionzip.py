"""VisionZip and VisionZip-om (SEATS_SPEC §10.4) under the same harness: the count rule, the merge into anchors by
a hand example, and the methods end to end on the sample (merged vectors written into the anchors' slots)."""

from __future__ import annotations

import pytest
import torch

from seats_cli.selection.visionzip import visionzip_counts, visionzip_window


@pytest.mark.parametrize("w, rho, counts", [
    (144, 0.30, (36, 7)),       # 36 + 7 = 43 of a 16:9 grid (0.2986)
    (144, 0.239236, (27, 7)),   # the audio-intact video ratio of the FastV/VisionZip pin: 34 per grid
    (50, 0.65, (30, 2)),        # float32 (0.6 * 50) = 30.000001 -> 30; round(2.5) = 2
    (144, 0.04, (0, 7)),        # rho <= c: the anchors only
    (3, 0.9, (2, 1)),
])
def test_counts(w, rho, counts):
    assert visionzip_counts(w, rho) == counts


def test_window_merges_the_rest_into_the_most_similar_anchor():
    # 6 tokens, rho 0.55 -> dom = int(0.5 * 6) = 3, ctx = min(max(round(0.3), 1), 3) = 1
    emb = torch.arange(6 * 2, dtype=torch.float32).reshape(6, 2)
    sal = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])  # dominant: 0, 2, 4
    keys = torch.tensor([[1.0, 0], [1, 0], [1, 0], [0, 1], [1, 0], [1, 0.1]])
    kept, anchors, merged = visionzip_window(emb, keys, sal, 0.55)
    # the non-dominant tokens 1, 3, 5 in index order; one anchor at local index 0 of them: token 1; tokens 3 and 5
    # are merged into it: anchor := e1 + mean(e3, e5)
    assert kept.tolist() == [0, 1, 2, 4] and anchors.tolist() == [1]
    assert merged.tolist() == [(emb[1] + (emb[3] + emb[5]) / 2).tolist()]


@pytest.mark.parametrize("method, video, audio", [("visionzip", 6 * 34, 150), ("visionzip-om", 6 * 43, 3 * 32)])
def test_end_to_end_on_the_sample(tiny_seats, sample_path, method, video, audio):
    # --trr 0.35 -> (0.30, 0.65). VisionZip: audio-intact reallocation of the raw pair on 864 + 150 tokens,
    # T = int(259.2 + 97.5) = 356 -> v = 206/864 = 0.238426 -> 27 + 7 per grid of 144, audio whole.
    # VisionZip-om: 36 + 7 per grid; audio windows of 50 keep 30 + 2.
    r = tiny_seats.ask(sample_path, "What is moving?", method=method, trr=0.35, max_new_tokens=1)
    assert all((row["video"], row["audio"]) == (video, audio) for row in r.layers)


def test_merged_vectors_reach_the_llm(tiny_seats, sample_path):
    """The engine writes each anchor's merged vector into its slot: the pruned prefill equals the stock layers run
    on the kept rows with those vectors (same positions)."""
    from seats_cli import engine
    from seats_cli.methods import build_pruner
    from reference import prepared_case

    ad = tiny_seats.adapter
    _, request, _ = prepared_case(ad, sample_path, "What is moving?")
    enc = ad.encode(request, saliency="official", video_span_grids=1)
    pruner, _ = build_pruner("visionzip-om", ad.config, request.layout, trr=0.35)
    choice = pruner.before_llm(ad, enc, request.layout)
    keep, pos, vec = choice.keep, choice.positions, choice.vectors
    res = engine.prefill(ad, enc, request.layout, pruner)
    embeds = enc.embeds.clone()
    embeds[0, pos] = vec
    hidden = embeds[:, keep]
    cos, sin = ad.rotary(hidden, enc.position_ids[:, :, keep])
    with torch.no_grad():
        for layer in ad.layers:
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin))
        ref = ad.lm_logits(ad.final_norm(hidden[:, -1])).float().reshape(-1)
    assert (res.logits - ref).abs().max().item() <= 1e-4


def test_a_modality_at_ratio_one_still_keeps_dominant_plus_contextual(tiny_seats, sample_path):
    """The authors skip VisionZip only when both ratios are 1: one modality at 1 alone still keeps dom + ctx per
    window (audio: int(0.95 x 50) = 47 + round(2.5) = 2 of each 50), in the answer and in the analytic counts."""
    from seats_cli.config import ModelConfig
    from seats_cli.methods.counts import pre_llm_counts
    from seats_cli.schedule import ModalityRatios

    r = tiny_seats.ask(sample_path, "What is moving?", method="visionzip-om", video_trr=0.30, audio_trr=1.0,
                       max_new_tokens=1)
    assert (r.layers[0]["video"], r.layers[0]["audio"]) == (6 * 43, 3 * 49)
    both = tiny_seats.ask(sample_path, "What is moving?", method="visionzip-om", video_trr=1.0, audio_trr=1.0,
                          max_new_tokens=1)
    assert (both.layers[0]["video"], both.layers[0]["audio"]) == (864, 150) and both.flops["reduction"] == 1.0
    seven_b = ModelConfig.from_name("qwen2.5-omni-7b")
    assert pre_llm_counts("visionzip-om", seven_b, ModalityRatios(0.30, 1.0), 9216, 1600, 144) == (2752, 32 * 49,
                                                                                                  "exact")
    assert pre_llm_counts("visionzip-om", seven_b, ModalityRatios(1.0, 1.0), 9216, 1600, 144) == (9216, 1600,
                                                                                                 "exact")


def test_says_what_the_windows_could_not_reach(tiny_seats, sample_path):
    # video 0.01 <= c: 7 anchors per grid of 144 only, 42 of 864; audio 0.65: 30 + 2 of each 50 (0.640, in reach)
    r = tiny_seats.ask(sample_path, "What is moving?", method="visionzip-om", video_trr=0.01, audio_trr=0.65,
                       max_new_tokens=1)
    assert (r.layers[0]["video"], r.layers[0]["audio"]) == (42, 96)
    assert r.notes[-1] == ("visionzip-om: video keeps 42/864 = 0.049 of the requested 0.010 (int((rho - c) w) "
                           "dominant + round(c w) contextual tokens per 144-token window, c = 0.05)")
    assert not any(n.startswith("visionzip-om: audio") for n in r.notes)


def test_anchor_keys_are_normalised_with_the_authors_eps():
    """k / (|k| + 1e-6), as the authors (not a clamp to unit length): a tiny anchor key shrinks to half its
    direction, so a token between two anchors joins the other one."""
    emb = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 2)
    sal = torch.tensor([0.9, 0.1, 0.1, 0.1])  # token 0 dominant
    keys = torch.tensor([[1.0, 0], [1e-6, 0], [0, 1.0], [1.0, 0.9]])
    # w = 4, rho 0.8, c 0.5: dom = int(0.3 x 4) = 1, ctx = min(max(round(2.0), 1), 3) = 2: anchors at step 1 among
    # tokens 1..3: tokens 1 and 2. Token 3 (direction 0.743, 0.669) scores 0.743 x 0.5 = 0.37 on anchor 1 (length
    # 1e-6 / 2e-6 = 0.5) and 0.669 on anchor 2: it joins token 2 (with unit-length keys it would join token 1)
    kept, anchors, merged = visionzip_window(emb, keys, sal, 0.8, c=0.5)
    assert kept.tolist() == [0, 1, 2] and anchors.tolist() == [1, 2]
    assert merged.tolist() == [emb[1].tolist(), (emb[2] + emb[3]).tolist()]
