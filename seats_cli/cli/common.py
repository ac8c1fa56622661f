"""Shared CLI plumbing: the Typer app, error mapping (one `error:` line, exit 2 for bad input, 1 for runtime
failures), quiet logging, and stdout/stderr consoles (results on stdout, everything else on stderr)."""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
from contextlib import contextmanager

import typer
from rich.console import Console

from seats_cli import choices

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Ask omni-modal LLMs about videos, made cheaper by SEATS token selection.",
)



def _print_version(value: bool) -> None:
    if not value:
        return
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from seats_cli import __version__

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    print(f"seats {__version__} (torch {of('torch')}, transformers {of('transformers')}, av {of('av')}, "
          f"Python {platform.python_version()})")
    raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the versions of seats, torch, transformers, PyAV and Python, and exit."),
) -> None:
    """Ask omni-modal LLMs about videos, made cheaper by SEATS token selection."""


stdout = Console(soft_wrap=True)
PIPE_WIDTH = 200  # table width when stdout is not a terminal (a file, a pipe) and COLUMNS is unset
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
    import logging

    # --decode-mode compiled: torch's C++ build probe logs "No CUDA runtime is found" as a warning on stderr;
    # dynamo's own warnings (a recompile limit reached) still show
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # the hub client's "Retrying in Ns" lines while it cannot reach the hub: the load error that follows says it
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def classify(exc: BaseException) -> int:
    """Exit status for an exception: 2 for bad usage or input, 1 for runtime failures."""
    from seats_cli.config import ConfigError
    from seats_cli.media import MediaError
    from seats_cli.models.loading import ModelLoadError

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
        # tables written to a file or a pipe get room for every cell (rich would cut them to 80 columns, eliding
        # numbers and labels); a terminal or COLUMNS keeps its own width
        stdout.width = None if stdout.is_terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
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
    """The QUESTION argument, or standard input for '-': any UTF-8 text; undecodable bytes are refused."""
    from seats_cli.request import check_text

    if question == "-":
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read()
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UsageProblem(f"standard input is not valid UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                                   f"{e.start})") from None
        return check_text(data, "the question on standard input")
    return check_text(question, "the QUESTION argument")


# Options shared by ask / batch / profile (per-request knobs and model loading knobs). Enumerated options show
# their allowed values as the metavar (seats_cli.choices) and are validated by seats_cli.request in one place.
def _one_of(values) -> str:
    return "[" + "|".join(values) + "]"


ModelOpt = typer.Option(DEFAULT_MODEL, "--model", "-m", envvar="SEATS_MODEL",
                        help="Hub id, local folder, or an offline model: 'synthetic' (trained on the synthetic "
                             "benchmark), 'tiny' / 'tiny-qwen3' (random weights at the 7B / 30B layouts).")
ConfigOpt = typer.Option(None, "--config", help="Preset name or YAML file (default: chosen from --model).")
MethodOpt = typer.Option("seats", "--method", metavar=_one_of(choices.METHODS),
                         help="seats (default), full, or a baseline.")
TrrOpt = typer.Option(None, "--trr", help="Overall token retention ratio, 0 < trr <= 1 (default: config, 0.35).")
VideoTrrOpt = typer.Option(None, "--video-trr", help="Set the video retention ratio R_v, 0 < R_v <= 1.")
AudioTrrOpt = typer.Option(None, "--audio-trr", help="Set the audio retention ratio R_a, 0 < R_a <= 1.")
DeviceOpt = typer.Option("auto", "--device", metavar="[auto|cpu|cuda|cuda:N]", help="Where the model runs.")
DeviceMapOpt = typer.Option(None, "--device-map", metavar="[auto]",
                            help="Spread the model over every visible GPU (large checkpoints such as the 30B).")
DtypeOpt = typer.Option("auto", "--dtype", metavar=_one_of(choices.DTYPES),
                        help="auto: bf16 on GPU, fp32 on CPU.")
AttnOpt = typer.Option("sdpa", "--attn-implementation", metavar=_one_of(choices.ATTN_IMPLEMENTATIONS),
                       help="Attention kernels of the stock model.")
DecodeModeOpt = typer.Option("auto", "--decode-mode", metavar=_one_of(choices.DECODE_MODES),
                             help="Decode loop: auto (a CUDA graph on one GPU, else in-place KV buffers); compiled "
                                  "(torch.compile'd step, a graph on one GPU: the first request compiles, tens of "
                                  "seconds); or one by name to compare (dynamic: the stock cache loop).")
FpsOpt = typer.Option(None, "--fps", help="Frames sampled per second (default 2).")
MaxFramesOpt = typer.Option(None, "--max-frames", help="Most frames sampled (default 128).")
MaxNewOpt = typer.Option(None, "--max-new-tokens", help="Most tokens generated (default: the preset's: 128 for the "
                         "real models, 12 for tiny, 1 for synthetic's one-letter answers).")
SeedOpt = typer.Option(0, "--seed", help="Random seed (decoding is greedy).")
KvOpt = typer.Option(None, "--kv-policy", metavar=_one_of(choices.KV_POLICIES), help="KV cache after pruning "
                     "(default survivors, official).")
ScoreLayerOpt = typer.Option(None, "--score-layer", metavar=_one_of(choices.SCORE_LAYERS),
                             help="Stage II scores with the previous layer's projections (official) or the next's.")
RatioModeOpt = typer.Option(None, "--ratio-mode", metavar=_one_of(choices.RATIO_MODES),
                            help="How --trr becomes (R_v, R_a): table (official pairs, default) or exact (the nearest "
                                 "pair scaled to hit R on this clip).")
SaliencySpanOpt = typer.Option(None, "--saliency-span", metavar=_one_of(choices.SALIENCY_SPANS),
                               help="Stage I saliency span: official (the Stage I window, default) or encoder (each "
                                    "encoder layer's own span).")
FrameSizingOpt = typer.Option(None, "--frame-sizing", metavar=_one_of(choices.FRAME_SIZINGS),
                              help="processor (official LLM input: qwen-omni-utils' size, then the processor's "
                                   "bounds; default) or preset (qwen-omni-utils' size only).")
ProcessorFpsOpt = typer.Option(None, "--processor-fps", metavar=_one_of(choices.PROCESSOR_FPS),
                               help="What the processor is told of the time: sampled (the true sampling fps, so "
                                    "positions follow real time; default) or official (none, as the authors' "
                                    "wrappers: the processor's default, Qwen2.5 2 fps, Qwen3 1 fps).")
RevisionOpt = typer.Option(None, "--revision", help="Hub revision.")
LocalOnlyOpt = typer.Option(False, "--local-files-only", help="Never contact the hub.")
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress display on stderr.")
LongContextOpt = typer.Option(False, "--allow-long-context",
                              help="Run even when the LLM input exceeds the model's context length.")


from seats_cli import request as _request  # noqa: E402

check_load_options = _request.check_load_options  # one place (seats_cli.request) for the CLIs and Seats(...)


def check_writable(path, flag: str = "--out") -> None:
    """A file this command will write: not a folder, in a folder that exists, writable (checked before any work)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise UsageProblem(f"{flag} {path} is a directory")
    parent = path.parent
    if not parent.is_dir():
        raise UsageProblem(f"{flag} {path}: no such folder {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageProblem(f"{flag} {path} is not writable")


def open_output(path, *, resume: bool, newline: str | None = None):
    """--out for results written row by row: opened without truncating, locked against a second run writing the
    same file at once (an exclusive flock, not waited for: two runs into one file lost one's rows), then emptied
    unless resuming (appending). The lock goes with the file when it is closed."""
    f = open(path, "a", encoding="utf-8", newline=newline)
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise UsageProblem(f"--out {path} is being written by another run; wait for it to end, or give another "
                           f"--out") from None
    except (ImportError, OSError):  # no flock here (another OS, some network filesystems): unlocked
        pass
    if not resume and stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # not /dev/null, a pipe, a terminal
        f.truncate(0)
    return f


def check_request_options(cfg, d: dict) -> None:
    """Per-request options of ask/batch, checked before any model is loaded (seats_cli.request)."""
    from seats_cli.request import RequestOptions

    RequestOptions(**{k: v for k, v in d.items() if v is not None}).check(cfg)


