"""OmniZip (SEATS_SPEC §10.6) and FastVID (§10.8) under the same harness: each step against a brute force written
here from the definition (float64, plain loops) or against hand-computed values, then the methods end to end on
the tiny model (budgets, a clip without sound, a clip shorter than one window, merged vectors in the LLM)."""

from __future__ import annotations

import math

import pytest
import torch

from seats_cli.selection import fastvid as fv
from seats_cli.selection import omnizip as oz

GEN = torch.Generator


def _rand(*shape, seed):
    return torch.randn(*shape, generator=GEN().manual_seed(seed))


def _cos64(a, b):
    a, b = a.double(), b.double()
    return float(a @ b) / (float(a.norm()) * float(b.norm()))


def _top_lowest_index(scores, k, largest=True):
    """The k best indices by score, ties to the lower index (a plain sort)."""
    sign = -1 if largest else 1
    return sorted(range(len(scores)), key=lambda i: (sign * scores[i], i))[:k]


# ------------------------------------------------------------------------------------------------ OmniZip
def _bf_audio(audio, video, sal, rho_a, c, g):
    n = audio.shape[0]
    dom = max(0, min(n, round((1 - rho_a) * n)))
    kept = set(_top_lowest_index(sal.tolist(), dom))
    rest = [i for i in range(n) if i not in kept]
    ctx = min(round(c * n), len(rest))
    step = max(1, len(rest) // ctx)
    anchors = [rest[j] for j in range(0, len(rest), step)][:ctx]
    kept |= set(anchors)
    pool = [i for i in rest if i not in anchors]
    a = audio.double()
    unit = lambda x: x / (x.norm() + 1e-6)  # noqa: E731
    merged = {}
    groups = {j: [] for j in anchors}
    for i in pool:
        sims = [float(unit(a[i]) @ unit(a[j])) for j in anchors]
        groups[anchors[max(range(len(anchors)), key=lambda m: (sims[m], -m))]].append(i)
    for j, members in groups.items():
        if not members:
            continue
        score = {i: max(float(unit(a[i]) @ unit(v)) for v in video.double()) for i in members}
        chosen = sorted(members, key=lambda i: (-score[i], i))[:min(g, len(members))]
        w = torch.softmax(torch.tensor([score[i] for i in chosen], dtype=torch.float64), dim=0)
        merged[j] = (a[j] + sum(w[m] * a[i] for m, i in enumerate(chosen))) / (1 + w.sum())
    return sorted(kept), merged


def test_audio_selection_equals_brute_force():
    audio, video = _rand(40, 6, seed=1), _rand(30, 6, seed=2)
    sal = torch.rand(40, generator=GEN().manual_seed(3))
    sel = oz.audio_select(audio, video, sal, rho_a=0.7, c=0.1, g=3)
    kept, merged = _bf_audio(audio, video, sal, 0.7, 0.1, 3)
    # dom = round(0.3 * 40) = 12 top tokens + round(0.1 * 40) = 4 anchors
    assert torch.nonzero(sel.keep).flatten().tolist() == kept and len(kept) == 16
    assert sorted(sel.anchors.tolist()) == sorted(merged)
    for j, vec in zip(sel.anchors.tolist(), sel.merged):
        assert (vec.double() - merged[j]).abs().max().item() <= 1e-5


def test_audio_selection_hand_made():
    # 10 tokens; saliency picks 7, 3 (rho_a = 0.8 -> dom = 2); rest 0,1,2,4,5,6,8,9; c = 0.2 -> 2 anchors at local
    # steps 8 // 2 = 4: tokens 0 and 5. Tokens 1, 2 point like 0, tokens 4, 6, 8, 9 like 5.
    e = torch.eye(3)
    audio = torch.stack([e[0], e[0] + 0.1 * e[1], e[0], e[1], e[2] + 0.2 * e[0], e[2], e[2], e[1], e[2], e[2]])
    sal = torch.tensor([0, 0, 0, 5, 0, 0, 0, 9, 0, 0], dtype=torch.float32)
    video = torch.stack([e[0], e[2]])
    sel = oz.audio_select(audio, video, sal, rho_a=0.8, c=0.2, g=3)
    assert torch.nonzero(sel.keep).flatten().tolist() == [0, 3, 5, 7]
    got = dict(zip(sel.anchors.tolist(), sel.merged))
    # anchor 0 takes tokens 1 (score cos(e0 + 0.1 e1, e0) = 0.995) and 2 (score 1): softmax weights, sum 1
    w = torch.softmax(torch.tensor([1 / math.sqrt(1.01), 1.0]), dim=0)
    assert torch.allclose(got[0], (audio[0] + w[0] * audio[1] + w[1] * audio[2]) / 2, atol=1e-6)
    # anchor 5 takes 4, 6, 8, 9; the top 3 by score are 6, 8, 9 (score 1) -> the mean of four equal vectors
    assert torch.allclose(got[5], e[2], atol=1e-6)


@pytest.mark.parametrize("sizes, retention, rho_v, want", [
    # base m = 0.75 - 0.4 r = [0.75, 0.55, 0.65, 0.35]; D* = 240; first argmin 3, argmax 0 stay; the others scaled
    # by (240 - 110) / 120
    ([100] * 4, [0.0, 0.5, 0.25, 1.0], 0.6, [0.75, 0.55 * 130 / 120, 0.65 * 130 / 120, 0.35]),
    # D* = 360: scaled past the bound -> clipped to 0.75, the residual shift clips again
    ([100] * 4, [0.0, 0.5, 0.25, 1.0], 0.9, [0.75, 0.75, 0.75, 0.35]),
    # all equal: argmin = argmax = chunk 0 is fixed once; the others take (18 - 5.5) / 11 of 0.55
    ([10] * 3, [0.5] * 3, 0.6, [0.55, 0.625, 0.625]),
    # two guided chunks: no renormalisation; the unguided third uses rho_v as is
    ([10] * 3, [0.5, 1.0], 0.2, [0.55, 0.35, 0.2]),
    # no sound at all: every chunk unguided
    ([10, 20], [], 0.7, [0.7, 0.7]),
])
def test_group_ratios(sizes, retention, rho_v, want):
    assert oz.group_ratios(sizes, retention, rho_v) == pytest.approx(want, abs=1e-12)


def _bf_dpc_cos(x, keep, k=5):
    n = x.shape[0]
    d = [[1 - _cos64(x[i], x[j]) if i != j else math.inf for j in range(n)] for i in range(n)]
    k = min(k, n - 1)
    rho = [math.exp(-sum(sorted(row)[:k]) / k) for row in d]
    delta = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i]]
        delta.append(min(denser) if denser else max(d[i][j] for j in range(n) if j != i))
    return sorted(_top_lowest_index([delta[i] * rho[i] for i in range(n)], keep))


def test_istc_equals_brute_force():
    n, frames = 12, 5
    video = _rand(frames * n + 3, 8, seed=4)  # 3 tokens past the last whole grid: dropped
    m = 0.6
    keep = int(n * (1 - m))  # 4
    want = []
    for t in range(frames):
        grid = video[t * n:(t + 1) * n]
        if t % 2 == 0:
            local = _bf_dpc_cos(grid, keep)
        else:
            prev = video[(t - 1) * n:t * n]
            local = sorted(_top_lowest_index([_cos64(grid[i], prev[i]) for i in range(n)], keep, largest=False))
        want += [t * n + i for i in local]
    assert oz.istc(video, n, m).tolist() == want
    assert oz.istc(video[:7], n, m).tolist() == list(range(7))  # shorter than one grid: kept whole


def test_runs():
    assert oz.runs(torch.tensor([3, 4, 5, 9, 10, 20])) == [(0, 3), (3, 5), (5, 6)]
    assert oz.runs(torch.tensor([], dtype=torch.long)) == []


# ------------------------------------------------------------------------------------------------ FastVID
def test_dyseg_cuts():
    sims = torch.tensor([0.99, 0.5, 0.97, 0.96, 0.9, 0.98])
    # c = 3: the 2 least similar transitions (1, 4) plus those below 0.84 (1): segments end after grids 1 and 4
    assert fv.dyseg(sims, c=3, tau=0.84) == [2, 3, 2]
    assert fv.dyseg(sims, c=8, tau=0.84) == [1] * 7  # c - 1 > F - 1: every transition is a cut
    assert fv.dyseg(torch.zeros(0), c=8) == [1]


def test_segment_budgets():
    # one grid: R = floor(16 * 0.5) = 8 -> ctx = int(3.2) = 3, sal = 5
    assert fv.segment_budgets(torch.zeros(0), 16, 0.5) == ([5], [3])
    # six grids, static sub-segments [2, 3, 1] (cuts where s < 0.95 after grids 1 and 4): R = 48, ctx = 19,
    # sal = 29 -> 10, 10, 9; one context slot (ceil(3 / 4)) counted from the end, capped at 16 // 2 = 8;
    # only each sub-segment's last grid keeps tokens; the last: sal min(9, 16 - 8) = 8
    sims = torch.tensor([0.99, 0.90, 0.99, 0.99, 0.90])
    assert fv.segment_budgets(sims, 16, 0.5) == ([0, 10, 0, 0, 10, 8], [0, 0, 0, 0, 0, 8])
    # p = 1: every sub-segment gets a slot; ctx 19 -> [7, 6, 6] given from the end -> [6, 6, 7]; salient
    # min(10, 16 - 6), min(10, 16 - 6), min(9, 16 - 7)
    assert fv.segment_budgets(sims, 16, 0.5, p=1) == ([0, 10, 0, 0, 10, 9], [0, 6, 0, 0, 6, 7])


def _bf_centres(x, k):
    m, dim = x.shape
    x = x.double()
    d = [[float((x[i] - x[j]).norm()) / math.sqrt(dim) for j in range(m)] for i in range(m)]
    dens = [math.exp(-sum(v * v for v in sorted(row)[:min(4, m)]) / min(4, m)) for row in d]
    top = max(max(row) for row in d)
    delta = [min([d[i][j] for j in range(m) if dens[j] > dens[i]] or [top]) for i in range(m)]
    return sorted(_top_lowest_index([delta[i] * dens[i] for i in range(m)], k))


def _bf_fastvid(x, sal, n, r, c, tau, tau_ign, d, p, beta):
    frames = x.shape[0] // n
    X = x.double()
    g = [X[t * n:(t + 1) * n].mean(0) for t in range(frames)]
    s = [_cos64(g[t], g[t + 1]) for t in range(frames - 1)]
    cuts = set(_top_lowest_index(s, min(c - 1, frames - 1), largest=False)) | {t for t in range(frames - 1)
                                                                                if s[t] < tau}
    segments, a = [], 0
    for t in range(frames):
        if t in cuts or t == frames - 1:
            segments.append((a, t))
            a = t + 1
    keep, merged = [], {}
    for a, b in segments:
        size = b - a + 1
        total = int(n * r) * size
        ctx = max(int(total * d), 1)
        sal_n = total - ctx
        plan = {}
        if size == 1:
            plan[a] = (sal_n, ctx)
        else:
            subs, sa = [], a
            for t in range(a, b + 1):
                if t == b or s[t] < tau_ign:
                    subs.append((sa, t))
                    sa = t + 1
            v = len(subs)
            slots = -(-v // p)
            ctx_slot = [ctx // slots + (j < ctx % slots) for j in range(slots)]
            for i, (_, last) in enumerate(subs):
                back = v - 1 - i
                cc = min(ctx_slot[back // p], n // 2) if back % p == 0 else 0
                plan[last] = (min(sal_n // v + (i < sal_n % v), n - cc), cc)
        salient, centres = [], []
        for t, (ks, kc) in plan.items():
            top = _top_lowest_index(sal[t * n:(t + 1) * n].tolist(), ks)
            salient += [t * n + i for i in top]
            if kc:
                rest = [i for i in range(n) if i not in top]
                picked = _bf_centres(x[[t * n + i for i in rest]], kc)
                centres.append([t * n + rest[j] for j in picked])
        seg = range(a * n, (b + 1) * n)
        for cen in centres:
            pool = [i for i in seg if i not in salient and i not in cen]
            groups = {j: [] for j in cen}
            for i in pool:
                sims = [_cos64(X[i], X[j]) for j in cen]
                groups[cen[max(range(len(cen)), key=lambda m: (sims[m], -m))]].append(i)
            for j, members in groups.items():
                if members:
                    w = max(1 / (len(members) + 1), beta)
                    merged[j] = w * X[j] + (1 - w) * sum(X[i] for i in members) / len(members)
                else:
                    merged[j] = X[j]
        keep += salient + [j for cen in centres for j in cen]
    return sorted(keep), merged


@pytest.mark.parametrize("c", [2, 8])
def test_fastvid_equals_brute_force(c):
    n, frames, dim = 10, 7, 6
    base = _rand(3, dim, seed=5) * 3
    # grids 0-2 look alike, then 3-4, then 5-6: DySeg cuts after 2 and 4 (and more with c = 8)
    which = [0, 0, 0, 1, 1, 2, 2]
    x = torch.cat([base[w] + 0.3 * _rand(n, dim, seed=10 + t) for t, w in enumerate(which)])
    sal = torch.rand(frames * n, generator=GEN().manual_seed(6))
    res = fv.fastvid(x, sal, n, 0.5, c=c, tau=0.5, tau_ignore=0.999)
    keep, merged = _bf_fastvid(x, sal, n, 0.5, c, 0.5, 0.999, 0.4, 4, 0.6)
    assert res.keep.tolist() == keep
    got = dict(zip(res.anchors.tolist(), res.merged))
    assert sorted(got) == sorted(merged)
    for j, vec in merged.items():
        assert (got[j].double() - vec).abs().max().item() <= 1e-5
    assert len(keep) <= frames * int(n * 0.5)  # at or below r


def test_fastvid_context_centres_equal_brute_force():
    x = _rand(15, 5, seed=7)
    assert fv.context_centres(x, 4, GEN().manual_seed(0)).tolist() == _bf_centres(x, 4)


# ------------------------------------------------------------------------------- end to end on the tiny model
def test_omnizip_end_to_end_on_the_sample(tiny_seats, sample_path):
    # 864 video (3 chunks of 2 grids x 144) + 150 audio at --trr 0.35 -> (0.30, 0.65): rho_a = 1.05 - 0.65 = 0.40,
    # dom = round(0.6 x 150) = 90 + round(7.5) = 8 anchors = 98 audio (by hand). Video (content-dependent: which
    # audio tokens the saliency keeps in each 50-token chunk): observed 34, 33, 31 -> r = 0.68, 0.66, 0.62, base
    # m = 0.75 - 0.4 r = 0.478, 0.486, 0.502; 3 guided chunks -> renormalised towards D* = 0.7 x 864 = 604.8: the
    # argmin (chunk 0) and argmax (chunk 2) stay, chunk 1 is scaled by (604.8 - 288 x 0.98) / (288 x 0.486) and
    # clipped to 0.75 (the residual shift clips again); each chunk keeps 2 x int(144 (1 - m)):
    # 2 x (int(75.17) + int(36.0) + int(71.71)) = 2 x (75 + 36 + 71) = 364
    r = tiny_seats.ask(sample_path, "What is moving?", method="omnizip", trr=0.35, max_new_tokens=1)
    assert (r.tokens["video"], r.tokens["audio"]) == (864, 150)
    counts = {(row["video"], row["audio"]) for row in r.layers}  # pre-LLM: the same at every layer
    assert counts == {(364, 98)}
    assert any(n.startswith("omnizip: video keeps") for n in r.notes)  # 0.30 is out of reach here


def test_omnizip_and_fastvid_without_sound(tiny_seats, tmp_path):
    from media_factory import make_clip

    import dataclasses

    from reference import prepared_case

    from seats_cli.methods import build_pruner
    from seats_cli.methods.counts import pre_llm_counts
    from seats_cli.schedule import ModalityRatios

    clip = make_clip(tmp_path / "silent.mp4", seconds=4.0, audio_rate=None)
    # 8 frames of 4:3 (280 x 392) -> 4 grids of 10 x 14 = 140 video tokens, no audio: the authors' Thinker runs
    # OmniZip only on video with sound, so every token stays (and the answer says why)
    r = tiny_seats.ask(clip, "What is moving?", method="omnizip", trr=0.35, max_new_tokens=1)
    assert (r.tokens["audio"], r.tokens["video"]) == (0, 560)
    assert r.layers[0]["video"] == 560 and r.flops["reduction"] == 1.0
    assert any(n.startswith("omnizip: the clip has no sound, so OmniZip kept every token") for n in r.notes)
    # baselines.omnizip_unpaired: core runs the core function: every chunk unguided (rho_v = 0.7 at trr 0.35 ->
    # R_v = 0.30): int(140 x (1 - 0.7)) = 42 per grid
    ad = tiny_seats.adapter
    core = dataclasses.replace(ad.config, baselines=dataclasses.replace(ad.config.baselines, omnizip_unpaired="core"))
    _, request, _ = prepared_case(ad, clip)
    pruner, plan = build_pruner("omnizip", core, request.layout, trr=0.35)
    keep = pruner.before_llm(ad, ad.encode(request, extra=plan.signals), request.layout)
    assert int((request.layout.modality[keep] == 1).sum()) == 4 * 42
    # the analytic counts (seats profile) follow the same setting, for a clip without sound and one without video
    ratios = ModalityRatios(0.30, 0.65)
    silent, still = ((280, 280), (0, 0)), ((0, 0, 0), (50, 50, 50))  # per-chunk (video, audio) tokens
    assert pre_llm_counts("omnizip", ad.config, ratios, 560, 0, 140, *silent) == (560, 0, "exact")
    assert pre_llm_counts("omnizip", core, ratios, 560, 0, 140, *silent) == (168, 0, "exact")
    assert pre_llm_counts("omnizip", ad.config, ratios, 0, 150, 140, *still) == (0, 150, "exact")
    # core on audio alone: dom = round((1 - 0.40) 150) = 90, plus round(0.05 x 150) = 8 anchors
    assert pre_llm_counts("omnizip", core, ratios, 0, 150, 140, *still) == (0, 98, "exact")
    # FastVID, no audio: r = 0.30; 4 grids (< c = 8): every grid its own segment, floor(42.0) = 42 each
    f = tiny_seats.ask(clip, "What is moving?", method="fastvid", trr=0.35, max_new_tokens=1)
    assert f.layers[0]["video"] == 4 * 42 and f.layers[0]["audio"] == 0


def test_methods_on_a_clip_shorter_than_one_window(tiny_seats, tmp_path):
    from media_factory import make_clip

    # 4 frames (the minimum) of 64 x 48 -> 280 x 392 -> 2 grids of 10 x 14 = 140 video tokens; 1 s -> 25 audio
    # tokens; one chunk. trr 0.35 -> (R_v, R_a) = (0.30, 0.65). All counts by hand:
    # - OmniZip: rho_a = 1.05 - 0.65 = 0.40: dom = round(0.6 x 25) = 15 + round(0.05 x 25) = 1 anchor = 16 audio;
    #   one guided chunk (no renormalisation), r = 16/25 = 0.64 -> m = 0.75 - 0.4 x 0.64 = 0.494, each grid keeps
    #   int(140 x 0.506) = int(70.84) = 70 -> 140 video
    # - FastVID: audio intact (§10.2): T = int(280 x 0.30 + 25 x 0.65) = int(100.25) = 100, r = (100 - 25) / 280;
    #   2 grids < c: one cut, each grid its own segment with floor(140 x 75 / 280) = floor(37.5) = 37 -> 74 video
    clip = make_clip(tmp_path / "short.mp4", seconds=1.0)
    want = {"omnizip": (140, 16), "fastvid": (74, 25)}
    for method in ("omnizip", "fastvid"):
        r = tiny_seats.ask(clip, "What is moving?", method=method, trr=0.35, max_new_tokens=1)
        assert (r.tokens["video"], r.tokens["audio"]) == (280, 25)
        assert {(row["video"], row["audio"]) for row in r.layers} == {want[method]}, method


@pytest.mark.parametrize("method", ["omnizip", "fastvid"])
def test_merged_vectors_reach_the_llm(tiny_seats, sample_path, method):
    """The prefill equals the stock layers run on the kept rows with the merged vectors in their anchors' slots,
    and the encoded request is left as it was."""
    from reference import prepared_case

    from seats_cli import engine
    from seats_cli.methods import build_pruner

    ad = tiny_seats.adapter
    _, request, _ = prepared_case(ad, sample_path, "What is moving?")
    pruner, plan = build_pruner(method, ad.config, request.layout, trr=0.35)
    enc = ad.encode(request, extra=plan.signals)
    before = enc.embeds.clone()
    choice = pruner.before_llm(ad, enc, request.layout)
    assert isinstance(choice, engine.Merge) and choice.positions.numel() > 0
    res = engine.prefill(ad, enc, request.layout, pruner)
    assert torch.equal(enc.embeds, before)
    embeds = enc.embeds.clone()
    embeds[0, choice.positions] = choice.vectors
    assert not torch.equal(embeds, before)
    hidden = embeds[:, choice.keep]
    cos, sin = ad.rotary(hidden, enc.position_ids[:, :, choice.keep])
    with torch.no_grad():
        for layer in ad.layers:
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin))
        ref = ad.lm_logits(ad.final_norm(hidden[:, -1])).float().reshape(-1)
    assert (res.logits - ref).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def qwen3_seats(seats_cache):
    from seats_cli import Seats

    return Seats("tiny-qwen3", device="cpu", dtype="float32", cache_dir=seats_cache)


@pytest.mark.parametrize("method, want", [
    # 6 s at 2 fps on Qwen3: 6 runs of one grid (144 video) + 13 audio each = 864 + 78; trr 0.35 -> (0.32, 0.70).
    # OmniZip: rho_a = 1.05 - 0.70 = 0.35: dom = round(0.65 x 78) = 51 + round(0.05 x 78) = 4 anchors = 55 audio
    # (by hand). Video content-dependent (observed): the audio kept per run is 9, 10, 10, 9, 9, 8 of 13 ->
    # base m = 0.75 - 0.4 r; 6 guided runs renormalised towards D* = 0.68 x 864 = 587.52: the first argmin (run 1,
    # 0.4423) and argmax (run 5, 0.5038) stay, the other four scale and shift up to the 0.75 clip; kept
    # 4 x int(144 x 0.25) + int(144 x 0.5577) + int(144 x 0.4962) = 144 + 80 + 71 = 295
    ("omnizip", (295, 55)),
    # FastVID (by hand): audio intact, T = int(864 x 0.32 + 78 x 0.70) = int(331.08) = 331, r = (331 - 78) / 864;
    # 6 grids < c = 8: every grid its own segment, floor(144 x 253 / 864) = floor(42.17) = 42 each -> 252
    ("fastvid", (252, 78)),
])
def test_on_qwen3(qwen3_seats, sample_path, method, want):
    r = qwen3_seats.ask(sample_path, "What is moving?", method=method, trr=0.35, max_new_tokens=1)
    assert (r.tokens["video"], r.tokens["audio"]) == (864, 78)
    assert {(row["video"], row["audio"]) for row in r.layers} == {want}


@pytest.mark.parametrize("trr", [0.35, 0.1])
def test_analytic_counts_equal_the_engine(tiny_seats, sample_path, trr):
    """`seats profile --analytic --method ...`: each baseline's per-layer counts from its definition equal what the
    engine kept on the sample (exact methods), bound it (FastVID) or estimate it (OmniZip: in its reachable band)."""
    from seats_cli import profile as prof
    from seats_cli.choices import METHODS

    methods = tuple(m for m in METHODS if m not in ("full", "seats"))
    result = prof.run_analytic(tiny_seats.config, prof.ProfileRequest(video=str(sample_path), trrs=(trr,),
                                                                      methods=methods))
    assert [r.method for r in result.runs] == list(methods)
    for run in result.runs:
        got = tiny_seats.ask(sample_path, "What is moving?", method=run.method, trr=trr, seed=0, max_new_tokens=1)
        want = [(r["video"], r["audio"]) for r in got.layers]
        counts = [(r["video"], r["audio"]) for r in run.layers]
        # the notes a run gives on what it could not reach, from the layout alone (methods.reach)
        noted = [n for n in got.notes if n.startswith(run.method + ":")]
        if run.counts == "exact":
            assert counts == want, run.method
            assert run.method_notes == noted, run.method
        elif run.method == "fastvid":
            assert all(c[0] >= w[0] and c[1] == w[1] for c, w in zip(counts, want))
            assert [n for n in run.method_notes if "audio keeps" in n] == [n for n in noted if "audio keeps" in n]
        else:
            # OmniZip's video misses R_v by far in both, the analytic note saying its count is an estimate
            assert [n.split(" keeps")[0] for n in run.method_notes] == [n.split(" keeps")[0] for n in noted]
            assert all("the count is an estimate" in n for n in run.method_notes if n.startswith("omnizip: video"))
            # the estimate assumes every chunk keeps the same share of its audio; both it and the engine's count
            # lie in the guided band: 6 grids x int(144 x [0.25, 0.65])
            assert run.method == "omnizip" and all(c[1] == w[1] for c, w in zip(counts, want))
            assert 6 * 36 <= counts[0][0] <= 6 * 93 and 6 * 36 <= want[0][0] <= 6 * 93


def test_fastvid_upper_bound_when_a_grid_gets_no_whole_token():
    """floor(n r) = 0: every segment keeps one context token, and the analytic bound counts one per grid."""
    from seats_cli.config import ModelConfig
    from seats_cli.methods.counts import pre_llm_counts
    from seats_cli.schedule import ModalityRatios

    x = _rand(20 * 4, 6, seed=8)
    res = fv.fastvid(x, torch.rand(80, generator=GEN().manual_seed(9)), 4, 0.2)
    assert 1 <= res.keep.numel() <= 20 and res.keep.numel() == res.anchors.numel()
    k_v, _, how = pre_llm_counts("fastvid", ModelConfig.from_name("tiny"), ModalityRatios(0.2, 1.0), 80, 0, 4)
    assert (k_v, how) == (20, "upper bound")


def test_analytic_fastvid_note_only_where_even_its_upper_bound_falls_short():
    """The analytic FastVID count is an upper bound: a reach note only where it is below R_v - 0.02 (the real count
    is lower still). 20 grids of 4 tokens: r = 0.45 keeps at most floor(4 x 0.45) = 1 per grid = 0.25 (noted);
    r = 0.2 keeps at most one context token per grid = 0.25, above r: the engine may reach r, no note."""
    from seats_cli.config import ModelConfig
    from seats_cli.methods.counts import baseline_notes
    from seats_cli.schedule import ModalityRatios

    tiny = ModelConfig.from_name("tiny")
    assert baseline_notes("fastvid", tiny, ModalityRatios(0.45, 1.0), 80, 0, 4) == [
        "fastvid: video keeps 20/80 = 0.250 of the requested 0.450 (floor(n r) per grid, the n/2 context cap and one "
        "budgeted grid per static sub-segment keep it at or below r; the count is an upper bound: FastVID's video "
        "with no two grids alike (one grid per segment))"]
    assert baseline_notes("fastvid", tiny, ModalityRatios(0.2, 1.0), 80, 0, 4) == []
