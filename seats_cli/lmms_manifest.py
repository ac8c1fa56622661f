"""lmms-eval's entry point for ``--model seats`` (pyproject: ``lmms_eval.models: seats``): the manifest alone.

lmms-eval reads its plugins' manifests while ``lmms_eval.models`` is being imported. When the manifest lived in
``seats_cli.lmms_plugin`` (which imports lmms-eval) and that module was imported first, lmms-eval found it half
initialised, logged "partially initialized module", and registered no plugin model in that process."""

from __future__ import annotations

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(model_id="seats", simple_class_path="seats_cli.lmms_plugin.SeatsLMM")
