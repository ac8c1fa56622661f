"""The result of one request as a typed record (``to_dict`` → the JSON contract) and its rich tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rich.console import Console

from seats_cli.layout import TokenLayout
from seats_cli.tables import Table


@dataclass
class WindowReport:
    index: int
    start_s: float
    end_s: float
    video_total: int
    audio_total: int
    kept: list[dict[str, int]]  # [{layer, video, audio}] at Stage I (layer 0) and at every drop layer


@dataclass
class AskResult:
    answer: str
    model: str
    method: str
    trr: float | None
    tokens: dict[str, int]
    flops: dict[str, float]
    latency_ms: dict[str, float]
    layers: list[dict[str, int]]
    windows: list[WindowReport]
    generated_tokens: int
    device: str
    dtype: str
    kv_policy: str
    schedule: dict | None = None
    media: dict | None = None
    notes: list[str] = field(default_factory=list)
    stage1_windows: dict | None = None  # SEATS: {video|audio: {window, totals, kept}} over the fixed windows
    random_weights: bool = False  # the tiny offline model: the answer is meaningless
    context: dict | None = None  # {tokens, tokens_before_pruning, max_position_id, limit}: LLM input vs context
    # what this request reused from the previous one about the same file: {"decode": bool, "encoders": bool}, and
    # "prefetched": whether its media was decoded ahead (seats_cli.prefetch; latency_ms.media is then the wait)
    reused: dict | None = None
    decode_mode: str | None = None  # the decode loop that ran (docs/METHOD.md §8)

    def to_dict(self) -> dict:
        return asdict(self)


def window_reports(layout: TokenLayout, stage_live) -> list[WindowReport]:
    per_stage = [(layer, layout.window_counts(live)) for layer, live in stage_live]
    out = []
    for i, w in enumerate(layout.windows):
        kept = [{"layer": layer, "video": counts[i][0], "audio": counts[i][1]} for layer, counts in per_stage]
        out.append(WindowReport(w.index, w.start_s, w.end_s, w.video_total, w.audio_total, kept))
    return out


def stage1_reports(layout: TokenLayout, plan, stage_live) -> dict:
    """Stage I's fixed per-modality windows (not the time chunks of ``windows``): each window's size and how
    many tokens Stage I kept in it; the kept counts sum to layer 0's counts."""
    from seats_cli.layout import AUDIO, VIDEO

    live = stage_live[0][1]
    out = {}
    for name, mod, window in (("video", VIDEO, plan.video_window), ("audio", AUDIO, plan.audio_window)):
        counts = layout.fixed_window_counts(live, mod, window)
        out[name] = {"window": window, "totals": [t for t, _ in counts], "kept": [k for _, k in counts]}
    return out


def layer_rows(layout: TokenLayout, layer_live) -> list[dict[str, int]]:
    return [{"layer": i, **layout.modality_counts(live)} for i, live in enumerate(layer_live)]


def _fmt_flops(x: float) -> str:
    return f"{x / 1e12:.3f} TFLOPs" if x >= 1e10 else f"{x / 1e9:.3f} GFLOPs"


def render(result: AskResult, console: Console) -> None:
    answer = result.answer if result.answer or result.generated_tokens else "(empty: the first token ended the answer)"
    if result.random_weights:
        console.print(f"[bold]Answer[/bold] [yellow](random weights, meaningless)[/yellow]: {answer}")
    else:
        console.print(f"[bold]Answer:[/bold] {answer}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")

    t = Table(title=f"{result.model} · {result.method}" + (f" · TRR {result.trr:g}" if result.trr else ""))
    for col in ("", "video", "audio", "text", "total"):
        t.add_column(col, justify="right")
    tk = result.tokens
    t.add_row("input tokens", str(tk["video"]), str(tk["audio"]), str(tk["text"]), str(sum(tk.values())))
    console.print(t)

    f = Table(title="LLM prefill cost (FLOPs analytic, paper convention; latency measured on " + result.device + ")")
    for col in ("full", "pruned", "reduction", "prefill", "decode"):
        f.add_column(col, justify="right")
    lat = result.latency_ms
    tps = lat.get("decode_tok_per_s")
    f.add_row(_fmt_flops(result.flops["full"]), _fmt_flops(result.flops["pruned"]), f"{result.flops['reduction']:.2f}x",
              f"{lat['prefill']:.1f} ms",
              f"{lat['decode']:.1f} ms ({result.generated_tokens} tok" + (f", {tps:.1f} tok/s)" if tps else ")"))
    console.print(f)
    parts = [f"{k} {lat[k]:.0f}" for k in ("load", "media", "prepare", "encode", "prefill", "decode") if k in lat
             and (k != "load" or lat[k])]
    if "total" in lat:
        console.print(f"[dim]whole request {lat['total']:.0f} ms: " + ", ".join(parts)
                      + (" (load: once per process)" if lat.get("load") else "") + "[/dim]")

    if result.stage1_windows:
        parts = []
        for name, s1 in result.stage1_windows.items():
            if s1["totals"]:
                parts.append(f"{name} {sum(s1['kept'])}/{sum(s1['totals'])} in {len(s1['totals'])} windows of "
                             f"{s1['window']}")
        if parts:
            console.print("Stage I (fixed windows): " + "; ".join(parts))
        if result.schedule and result.schedule.get("achieved_trr") is not None:
            sc = result.schedule
            console.print(f"TRR requested {sc['trr']:g} ({sc['ratio_mode']}: video {sc['video_trr']:.4g}, audio "
                          f"{sc['audio_trr']:.4g}); achieved {sc['achieved_trr']:.4f}")
    if result.windows:
        stage_layers = [k["layer"] for k in result.windows[0].kept]
        w = Table(title="Per time chunk (Stage II's windows where there is sound): tokens kept (video kept/total · audio kept/total) "
                        "entering each stage layer")
        w.add_column("window", justify="right")
        w.add_column("span", justify="right")
        for layer in stage_layers:
            w.add_column(f"L{layer}", justify="right")
        for win in result.windows:
            cells = [f"{k['video']}/{win.video_total} · {k['audio']}/{win.audio_total}" for k in win.kept]
            w.add_row(str(win.index), f"{win.start_s:g}–{win.end_s:g} s", *cells)
        console.print(w)
