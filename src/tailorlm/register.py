"""The `register` verb: a registered model is a name and version pointing at a complete run's adapter
(or full weights), with a model card. Serving and exports load models through `tailorlm.modeling`."""

from __future__ import annotations

from typing import Any

from tailorlm.audit import current_user
from tailorlm.errors import UserError
from tailorlm.registry import Artifact, DocumentMeta, EvaluationMeta, ModelMeta, RunMeta
from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_text, read_jsonl


class GateFailed(UserError, RuntimeError):
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
    gate = evaluation.meta_as(EvaluationMeta).gate_for(run_artifact.id) if evaluation else None
    if evaluation is not None and gate is not None and not gate.passed:
        unmet = ", ".join(gate.unmet) or "objectives"
        if not force:
            raise GateFailed(
                f"run {run_artifact.id} failed the gate in {evaluation.id} ({unmet}); improve it, or pass "
                "--force to register anyway (recorded in the audit log)"
            )
        workspace.audit.append("register.forced", inputs=[run_artifact.id, evaluation.id], unmet=unmet)
    version = workspace.next_version("model", name)
    final = workspace.model_dir(name, version)
    run_dir = workspace.path_of(run_artifact)
    run_meta = run_artifact.meta_as(RunMeta)
    artifact_dir = run_dir / run_meta.artifact
    description = ModelMeta(
        name=name,
        version=version,
        run=run_artifact.id,
        artifact=workspace.relative(artifact_dir),
        base_model=run_meta.base_model,
        method=run_meta.method,
        dataset=run_meta.dataset,
        hash=run_artifact.hash,
        system_prompt=system_prompt,
        evaluation=evaluation.id if evaluation else None,
        registered_by=current_user(),
    )
    with workspace.staging(final) as staging:
        atomic_write_json(staging / "model.json", description.model_dump(exclude={"error"}))
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


def model_card(workspace: Workspace, description: ModelMeta, run: Artifact, evaluation: Artifact | None) -> str:
    """The MODEL_CARD.md of a registered model: lineage back to the source files, training, evaluation."""
    lines = [
        f"# {description.name} {description.version}",
        "",
        f"Fine-tuned from `{description.base_model}` with **{description.method}** by TailorLM.",
        "",
        "## Lineage",
        "",
        f"- run: `{run.id}` (artifact hash `{run.hash[:16]}`)",
        f"- dataset: `{description.dataset}`",
    ]
    for ancestor in workspace.registry.lineage(run.id):
        if isinstance(ancestor.meta, DocumentMeta):
            lines.append(f"- source file: `{ancestor.meta.source_path or ancestor.name}` (sha256 {ancestor.hash[:16]})")
    lines += ["", "## Training", ""]
    for key, value in sorted(run.meta_as(RunMeta).metrics.items()):
        lines.append(f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}")
    if evaluation:
        evaluated = evaluation.meta_as(EvaluationMeta)
        lines += ["", "## Evaluation", "", f"Evaluation `{evaluation.id}`:", ""]
        for candidate, scores in evaluated.scores.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
            lines.append(f"- {candidate}: {shown}")
        if evaluated.gate:
            lines.append(f"- gate: {'passed' if evaluated.gate.passed else 'FAILED'}")
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
