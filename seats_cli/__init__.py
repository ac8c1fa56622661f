"""seats: ask omni-modal LLMs about videos, several times cheaper with SEATS token selection."""

from seats_cli._versions import check_transformers

check_transformers()

from seats_cli.api import ContextTooLong, Seats  # noqa: E402
from seats_cli.config import ConfigError, ModelConfig  # noqa: E402
from seats_cli.frames import MediaError  # noqa: E402
from seats_cli.models import load_model  # noqa: E402
from seats_cli.models.loading import ModelLoadError  # noqa: E402
from seats_cli.report import AskResult  # noqa: E402

# what Seats raises: ConfigError (a bad option or request; ContextTooLong, its subclass, a request over the model's
# context) and MediaError (a file that cannot be decoded), both ValueErrors; ModelLoadError (RuntimeError) when the
# weights cannot be loaded
__all__ = ["AskResult", "ConfigError", "ContextTooLong", "MediaError", "ModelConfig", "ModelLoadError", "Seats",
           "load_model"]
__version__ = "0.1.0"
