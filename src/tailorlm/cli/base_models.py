"""`tailorlm base import/list`: GGUF base models converted once into the workspace and registered."""

from __future__ import annotations

from typing import Annotated

import typer

from tailorlm.cli import base_app
from tailorlm.cli.common import JsonOption, WorkspaceOption, _progress, _workspace, command
from tailorlm.output import console, print_json, print_table
from tailorlm.registry import BaseMeta, BaseOrigin


def _packaged_names() -> list[str]:
    from tailorlm.bases.packages import PACKAGED

    return list(PACKAGED)


@base_app.command("import")
@command
def base_import(
    source: Annotated[
        str,
        typer.Argument(help="A .gguf file, or an installed model package: " + ", ".join(_packaged_names()) + "."),
    ],
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option(help="Name to register it under (default: from the file).")] = None,
    dtype: Annotated[str, typer.Option(help="Dequantise to float32 (any CPU), bfloat16 or float16.")] = "float32",
) -> None:
    """Convert a GGUF once into a model directory in the workspace and register it as a base.

    \b
    Example:
      tailorlm base import ~/models/company-llama.Q4_K_M.gguf --name company-llama --workspace ws
    """
    from tailorlm.bases import import_base

    ws = _workspace(workspace)
    artifact = import_base(ws, source, name=name, dtype=dtype, progress=_progress())
    console.print(f"base [bold]{artifact.name}[/]: {ws.path_of(artifact)}")
    console.print(f"Use it with `base_model: {artifact.name}` in the project file.")


@base_app.command("list")
@command
def base_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Registered base models with their origin, licence and hash.

    \b
    Example:
      tailorlm base list --workspace ws --json
    """
    from tailorlm.bases import list_bases

    ws = _workspace(workspace)
    bases = list_bases(ws)
    if as_json:
        print_json([{"name": a.name, "path": str(ws.path_of(a)), **a.meta.model_dump(mode="json")} for a in bases])
        return
    if not bases:
        console.print("No base models yet: `tailorlm base import FILE.gguf`.")
        return
    rows = []
    for artifact in bases:
        meta = artifact.meta_as(BaseMeta)
        origin = meta.origin or BaseOrigin()
        where = f"{origin.package} {origin.version or ''}" if origin.package else origin.file or ""
        rows.append(
            [
                artifact.name,
                f"{meta.parameters / 1e6:.0f}M",
                meta.dtype,
                meta.license or "unknown",
                where,
                meta.sha256[:16],
            ]
        )
    print_table(["name", "parameters", "dtype", "licence", "origin", "sha256"], rows)
