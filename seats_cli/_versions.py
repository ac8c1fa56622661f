"""The transformers versions seats works with, stated once (pyproject's range must agree), checked at import."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

TESTED_TRANSFORMERS = "5.24.0"  # the version the test suite ran against
MIN_TRANSFORMERS = (5, 0)  # the stock Qwen-Omni classes of 5.x are driven unmodified; 4.x lays them out differently
MAX_TRANSFORMERS = (6, 0)  # exclusive


def _major_minor(text: str) -> tuple[int, int]:
    parts = (text.split("+")[0].split(".") + ["0", "0"])[:2]
    return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


def check_transformers(installed: str | None = None) -> None:
    """Raise ImportError with one clear line when the installed transformers is outside the supported range."""
    if installed is None:
        try:
            installed = version("transformers")
        except PackageNotFoundError:
            raise ImportError("seats needs transformers (>=5.0,<6); install it with `pip install "
                              "'transformers>=5,<6'`") from None
    have = _major_minor(installed)
    if not MIN_TRANSFORMERS <= have < MAX_TRANSFORMERS:
        raise ImportError(f"seats needs transformers >=5.0,<6 (tested with {TESTED_TRANSFORMERS}); found "
                          f"{installed}: `pip install 'transformers>=5,<6'`")
