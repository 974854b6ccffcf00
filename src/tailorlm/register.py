"""The `register` verb: a registered model is a name and version pointing at a complete run's adapter
(or full weights), with a model card. Serving and exports load models through `tailorlm.modeling`."""

from __future__ import annotations

from typing import Any

from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_text, read_jsonl


class GateFailed(RuntimeError):
    """The run's latest evaluation did not meet the project's objectives."""


def latest_evaluation(workspace: Workspace, run_id: str) -> Artifact | None:
    evaluations = [a for a in workspace.registry.children(run_id) if a.kind == "evaluation" and a.status == "complete"]
    return evaluations[-1] if evaluations else None  # children come oldest first


def register(
    workspace: Workspace,
    run: str | None = None,
    *,
    name: str,
    force: bool = False,
    system_prompt: str | None = None,
) -> Artifact:
    """Register a complete run as `name@vN`. Refused when its latest evaluation failed the gate,
    unless `force` (which is recorded in the audit log with the user)."""
    run_artifact = workspace.resolve("run", run)
    evaluation = latest_evaluation(workspace, run_artifact.id)
    meta = evaluation.meta if evaluation else {}
    gate = (meta.get("gates") or {}).get(run_artifact.id) or meta.get("gate") or {}  # per run when several compared
    if gate and not gate.get("passed", True):
        unmet = ", ".join(gate.get("unmet", [])) or "objectives"
        if not force:
            raise GateFailed(
                f"run {run_artifact.id} failed the gate in {evaluation.id} ({unmet}); improve it, or pass "
                "--force to register anyway (recorded in the audit log)"
            )
        workspace.audit.append("register.forced", inputs=[run_artifact.id, evaluation.id], unmet=unmet)
    version = workspace.next_version("model", name)
    final = workspace.model_dir(name, version)
    run_dir = workspace.path_of(run_artifact)
    artifact_dir = run_dir / run_artifact.meta.get("artifact", "adapter")
    description = {
        "name": name,
        "version": version,
        "run": run_artifact.id,
        "artifact": workspace.relative(artifact_dir),
        "base_model": run_artifact.meta.get("base_model"),
        "method": run_artifact.meta.get("method"),
        "dataset": run_artifact.meta.get("dataset"),
        "hash": run_artifact.hash,
        "system_prompt": system_prompt,
        "evaluation": evaluation.id if evaluation else None,
    }
    with workspace.staging(final) as staging:
        atomic_write_json(staging / "model.json", description)
        atomic_write_text(staging / "MODEL_CARD.md", model_card(workspace, description, run_artifact, evaluation))
    parents = [run_artifact.id] + ([evaluation.id] if evaluation else [])
    artifact = workspace.registry.add(
        Artifact(
            id=f"model-{name}-{version}",
            kind="model",
            name=name,
            version=version,
            hash=run_artifact.hash,
            path=workspace.relative(final),
            meta=description,
        ),
        parents=parents,
    )
    workspace.audit.append("register", inputs=parents, outputs=[artifact.id], forced=force)
    return artifact


def model_card(workspace: Workspace, description: dict[str, Any], run: Artifact, evaluation: Artifact | None) -> str:
    lines = [
        f"# {description['name']} {description['version']}",
        "",
        f"Fine-tuned from `{description['base_model']}` with **{description['method']}** by TailorLM.",
        "",
        "## Lineage",
        "",
        f"- run: `{run.id}` (artifact hash `{run.hash[:16]}`)",
        f"- dataset: `{description['dataset']}`",
    ]
    for ancestor in workspace.registry.lineage(run.id):
        if ancestor.kind == "document":
            lines.append(
                f"- source file: `{ancestor.meta.get('source_path', ancestor.name)}` (sha256 {ancestor.hash[:16]})"
            )
    lines += ["", "## Training", ""]
    for key, value in sorted(run.meta.get("metrics", {}).items()):
        lines.append(f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}")
    if evaluation:
        lines += ["", "## Evaluation", "", f"Evaluation `{evaluation.id}`:", ""]
        for candidate, scores in evaluation.meta.get("scores", {}).items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
            lines.append(f"- {candidate}: {shown}")
        gate = evaluation.meta.get("gate")
        if gate:
            lines.append(f"- gate: {'passed' if gate.get('passed') else 'FAILED'}")
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Answers in the company's tone on the topics of its training data; check the evaluation "
        "report before relying on it for anything else.",
        "",
    ]
    return "\n".join(lines)


def run_metrics(workspace: Workspace, run: Artifact) -> list[dict[str, Any]]:
    path = workspace.path_of(run) / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []
