"""seats: ask omni-modal LLMs about videos, several times cheaper with SEATS token selection."""

from seats_cli._versions import check_transformers

check_transformers()

from seats_cli.api import Seats  # noqa: E402
from seats_cli.config import ModelConfig  # noqa: E402
from seats_cli.models import load_model  # noqa: E402
from seats_cli.report import AskResult  # noqa: E402

__all__ = ["AskResult", "ModelConfig", "Seats", "load_model"]
__version__ = "0.1.0"
