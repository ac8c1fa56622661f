#!/usr/bin/env bash
# Download, on a machine with pip access, the wheels a GPU machine without network lacks for the GPU check
# (benchmarks/gpu_check.sh): transformers at our tested version and PyAV, for CPython 3.12 on x86-64 Linux, into
# the ignored folder .whl/ (<= 60 MB). Its image has torch, numpy, tokenizers, safetensors, huggingface_hub, typer,
# rich, pyyaml, pytest, hypothesis (docs: the device tool's KINDS.md); everything else seats needs is pure Python
# in this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
TRANSFORMERS="${TRANSFORMERS:-5.24.0}"
AV="${AV:-15.1.0}"
rm -rf .whl && mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    -d .whl "transformers==${TRANSFORMERS}" "av==${AV}"
ls -l .whl
du -sh .whl
