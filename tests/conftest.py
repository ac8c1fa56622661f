"""Shared fixtures: the offline tiny model (built once per session into a temporary cache), the committed
sample clip, and a loaded ``Seats`` on the CPU in fp32."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run (a red CI must be reproducible); locally hypothesis explores freely.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample.mp4"


@pytest.fixture(scope="session", autouse=True)
def seats_cache(tmp_path_factory):
    """Every test (and every `seats` subprocess) builds/reads the tiny model in one session cache."""
    cache = os.environ.get("SEATS_TEST_CACHE") or str(tmp_path_factory.mktemp("seats-cache"))
    os.environ["SEATS_CACHE"] = cache
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # the lmms tier loads exported tasks' local JSON with `datasets`
    return Path(cache)


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def tiny_dir(seats_cache) -> Path:
    from seats_cli.models.tiny import tiny_model_dir

    return tiny_model_dir(seats_cache)


@pytest.fixture(scope="session")
def tiny_seats(tiny_dir):
    from seats_cli import Seats

    return Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent)


@pytest.fixture
def one_thread():
    """One torch thread for tiny-model tests: the model is small, and on a busy 2-core runner two threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
