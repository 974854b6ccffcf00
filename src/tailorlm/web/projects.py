"""The workspace's project file as the dashboard reads it: loaded without resolving or importing the base
model (a page must not convert a GGUF), and a bad file shown as a message rather than a failed page."""

from __future__ import annotations

from typing import Any

import yaml

from tailorlm.config import ConfigError, Project, load_project
from tailorlm.workspace import Workspace


def load_workspace_project(workspace: Workspace) -> tuple[Project | None, str | None]:
    """(the project, None) or (None, why it could not be read)."""
    if not workspace.project_file.is_file():
        return None, f"no project file at {workspace.project_file}"
    try:
        return load_project(workspace.project_file), None
    except (ConfigError, OSError, ValueError) as error:
        return None, str(getattr(error, "message", error))


def project_with_train(workspace: Workspace, train: dict[str, Any]) -> str:
    """The workspace's project file with its `train:` section replaced and every path made absolute, as YAML
    (a background job trains with it without touching the user's file)."""
    project, problem = load_workspace_project(workspace)
    if project is None:
        raise ConfigError(problem or "no project file")
    data = yaml.safe_load(workspace.project_file.read_text(encoding="utf-8")) or {}
    data["train"] = train
    base = project.resolve(project.base_model)
    data["base_model"] = str(base) if base.exists() else str(project.base_model)  # else a registered base name
    data["sources"] = [
        {**raw, "path": str(project.resolve(source.path))}
        for raw, source in zip(data.get("sources", []), project.sources, strict=False)
    ]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
