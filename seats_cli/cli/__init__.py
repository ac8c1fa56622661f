"""The `seats` command line: a thin layer over the library (parse, call, print)."""

from __future__ import annotations

import sys

import typer

# each registers its command(s), in this order in --help (the `eval` group is listed after the commands)
from seats_cli.cli import ask, batch, profile, eval  # noqa: F401, I001
from seats_cli.cli import analyze  # noqa: F401, E402  (analyze and calibrate)
from seats_cli.cli.common import app

cli = typer.main.get_command(app)


def main() -> None:
    """Console entry point: usage errors become one `error:` line with exit status 2."""
    try:
        code = cli.main(standalone_mode=False)
    except (typer.Exit, typer.Abort) as e:
        code = getattr(e, "exit_code", 130)
    except Exception as e:  # typer's (vendored click) usage errors carry format_message / exit_code
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":
            ctx = getattr(e, "ctx", None)
            print(ctx.get_help() if ctx else "usage: seats COMMAND ...", file=sys.stderr)
        else:
            print(f"error: {' '.join(str(e.format_message()).split())}", file=sys.stderr)
        code = e.exit_code or 2
    sys.exit(code or 0)


__all__ = ["app", "cli", "main"]
