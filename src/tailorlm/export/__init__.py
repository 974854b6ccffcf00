"""The `export` verb: a registered model (or a complete run) out of the workspace, in a format other
tools load — merged safetensors, GGUF, an Ollama Modelfile, or a vLLM multi-LoRA layout.

    from tailorlm.export import export
    result = export(workspace, "acme@v1", "gguf")
    result.path                    # <workspace>/exports/acme-v1/gguf
    result.report["checks"]        # what was verified, and what couldn't be (with the reason)

Each target is one file in this folder with one ``@target(...)`` line; the function writes into a
staging folder that is renamed into place only when it returns, so a failed export leaves nothing
half-written. Every export writes ``export_report.json`` and appends an ``export`` audit event; none
registers anything in the model table.
"""

from __future__ import annotations

# The targets register themselves on import (they import the registry from runner.py).
from tailorlm.export import gguf, merge, ollama, vllm  # noqa: F401
from tailorlm.export.runner import (
    REPORT_FILE,
    TARGETS,
    ExportContext,
    ExportError,
    ExportResult,
    Report,
    Target,
    TargetOption,
    available_targets,
    export,
    load_model_ref,
    shared_options,
    target,
)

__all__ = [
    "REPORT_FILE",
    "TARGETS",
    "ExportContext",
    "ExportError",
    "ExportResult",
    "Report",
    "Target",
    "TargetOption",
    "available_targets",
    "export",
    "load_model_ref",
    "shared_options",
    "target",
]
