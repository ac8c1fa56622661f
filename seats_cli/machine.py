"""One description of the machine a measurement ran on (used by every result that reports latency)."""

from __future__ import annotations

import functools
import os
import platform

import torch


def machine_info(device: torch.device) -> dict:
    """Device, torch version, threads, CPU model and core count, and the GPU's name on CUDA."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info | {"cpu": cpu_model(), "cpu_count": os.cpu_count()}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (read once per process: every request reports it)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def describe_device(device: torch.device) -> str:
    """One line for a result's ``device`` field: ``cuda:0 (NVIDIA H100 ...)`` or ``cpu (<model>, N threads)``."""
    info = machine_info(device)
    if "gpu" in info:
        return f"{device} ({info['gpu']})"
    return f"cpu ({info['cpu']}, {info['threads']} threads)"
