"""Shared CLI plumbing: the Typer app, error mapping (one `error:` line, exit 2 for bad input, 1 for runtime
failures), quiet logging, and stdout/stderr consoles (results on stdout, everything else on stderr)."""

from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Ask omni-modal LLMs about videos, made cheaper by SEATS token selection.",
)



@app.callback()
def _root() -> None:
    """Ask omni-modal LLMs about videos, made cheaper by SEATS token selection."""


stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

DEFAULT_MODEL = "Qwen/Qwen2.5-Omni-7B"


class UsageProblem(ValueError):
    """Bad usage or input (exit status 2)."""


def fail(message: str, code: int = 2) -> None:
    msg = " ".join(str(message).split()) or "failed"
    print(f"error: {msg}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def classify(exc: BaseException) -> int:
    """Exit status for an exception: 2 for bad usage or input, 1 for runtime failures."""
    from seats_cli.config import ConfigError
    from seats_cli.media import MediaError
    from seats_cli.models.base import ModelLoadError

    if isinstance(exc, (MediaError, ConfigError, UsageProblem)):
        return 2
    if isinstance(exc, ModelLoadError):
        return 1
    if isinstance(exc, ValueError):
        return 2
    return 1


def guarded(fn):
    """Run a command body; turn any exception into one `error:` line and the right exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as e:  # noqa: BLE001 - the CLI never shows a traceback
            if os.environ.get("SEATS_DEBUG"):
                raise
            fail(str(e) or type(e).__name__, classify(e))

    return wrapper


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextmanager
def status(message: str, enabled: bool):
    if enabled:
        with stderr.status(message):
            yield
    else:
        yield


def read_question(question: str) -> str:
    if question == "-":
        question = sys.stdin.read()
    if not question or not question.strip():
        raise UsageProblem("the question is empty")
    return question.strip()


# Options shared by ask / batch / profile (per-request knobs and model loading knobs).
ModelOpt = typer.Option(DEFAULT_MODEL, "--model", "-m", envvar="SEATS_MODEL",
                        help="Hub id, local folder, or 'tiny' (offline random-weight model).")
ConfigOpt = typer.Option(None, "--config", help="Preset name or YAML file (default: chosen from --model).")
MethodOpt = typer.Option("seats", "--method", help="seats (default), full, or a baseline: random, divprune, fastv, fastv-om.")
TrrOpt = typer.Option(None, "--trr", help="Overall token retention ratio, 0 < trr <= 1 (default: config, 0.35).")
VideoTrrOpt = typer.Option(None, "--video-trr", help="Override the video retention ratio.")
AudioTrrOpt = typer.Option(None, "--audio-trr", help="Override the audio retention ratio.")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N.")
DtypeOpt = typer.Option("auto", "--dtype", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16.")
AttnOpt = typer.Option("sdpa", "--attn-implementation", help="sdpa, eager or flash_attention_2.")
FpsOpt = typer.Option(None, "--fps", help="Frames sampled per second (default 2).")
MaxFramesOpt = typer.Option(None, "--max-frames", help="Most frames sampled (default 128).")
MaxNewOpt = typer.Option(128, "--max-new-tokens", help="Most tokens generated.")
SeedOpt = typer.Option(0, "--seed", help="Random seed (decoding is greedy).")
KvOpt = typer.Option(None, "--kv-policy", help="survivors (official) or per_layer.")
ScoreLayerOpt = typer.Option(None, "--score-layer", help="previous (official) or next.")
RatioModeOpt = typer.Option(None, "--ratio-mode", help="How --trr becomes (R_v, R_a): table (official pairs, "
                            "default) or exact (the nearest pair scaled to hit R on this clip).")
SaliencySpanOpt = typer.Option(None, "--saliency-span", help="Stage I saliency span: official (the Stage I "
                               "window, default) or encoder (each encoder layer's own span).")
FrameSizingOpt = typer.Option(None, "--frame-sizing", help="processor (official LLM input: qwen-omni-utils' size, "
                              "then the processor's bounds; default) or preset (qwen-omni-utils' size only).")
RevisionOpt = typer.Option(None, "--revision", help="Hub revision.")
LocalOnlyOpt = typer.Option(False, "--local-files-only", help="Never contact the hub.")
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress display on stderr.")


def check_request_options(cfg, d: dict) -> None:
    """Per-request options of ask/batch, checked before any model is loaded."""
    from seats_cli.api import frame_policy
    from seats_cli.methods import METHODS

    from seats_cli.config import SALIENCY_SPANS
    from seats_cli.schedule import RATIO_MODES

    frame_policy(cfg, d["fps"], d["max_frames"], d.get("frame_sizing"))
    if d.get("ratio_mode") not in (None, *RATIO_MODES):
        raise UsageProblem(f"--ratio-mode must be one of {', '.join(RATIO_MODES)}, got {d['ratio_mode']!r}")
    if d.get("saliency_span") not in (None, *SALIENCY_SPANS):
        raise UsageProblem(f"--saliency-span must be one of {', '.join(SALIENCY_SPANS)}, got {d['saliency_span']!r}")
    if d["method"] not in METHODS:
        raise UsageProblem(f"unknown method {d['method']!r}; choose one of: {', '.join(METHODS)}")
    for name in ("trr", "video_trr", "audio_trr"):
        if d[name] is not None and not 0 < d[name] <= 1:
            raise UsageProblem(f"--{name.replace('_', '-')} must be in (0, 1], got {d[name]}")
    if d["max_new_tokens"] < 1:
        raise UsageProblem("--max-new-tokens must be at least 1")
    if d["kv_policy"] not in (None, "survivors", "per_layer"):
        raise UsageProblem(f"--kv-policy must be survivors or per_layer, got {d['kv_policy']!r}")
    if d["score_layer"] not in (None, "previous", "next"):
        raise UsageProblem(f"--score-layer must be previous or next, got {d['score_layer']!r}")
