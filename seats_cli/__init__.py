"""seats: ask omni-modal LLMs about videos, several times cheaper with SEATS token selection."""

from seats_cli.api import Seats
from seats_cli.config import ModelConfig
from seats_cli.models import load_model
from seats_cli.report import AskResult

__all__ = ["AskResult", "ModelConfig", "Seats", "load_model"]
__version__ = "0.1.0"
