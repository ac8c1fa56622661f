"""Model families. Each adapter exposes what the engine needs: encoders, embeddings, decoder layers,
rotary, and the last-token query scores of a layer; the engine never touches family specifics."""

from seats_cli.models.base import EncodedRequest, OmniAdapter, PreparedRequest
from seats_cli.models.loading import ModelLoadError, load_model

__all__ = ["EncodedRequest", "ModelLoadError", "OmniAdapter", "PreparedRequest", "load_model"]
