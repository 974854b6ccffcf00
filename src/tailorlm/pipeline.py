"""`tailorlm run`: every stage of a project in order — prepare (with ingest) → train → evaluate →
register — each skipped when its inputs (content hashes) and settings are unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tailorlm.checks import describe, problems
from tailorlm.config import ConfigError, Project
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import ModelMeta
from tailorlm.workspace import Workspace


@dataclass
class PipelineResult:
    dataset: Any
    train: Any
    evaluation: Any
    model: Any  # the registered model artifact, or None when the gate failed


def run_project(
    workspace: Workspace,
    project: Project,
    *,
    force: bool = False,
    progress: Progress = SILENT,
    register_name: str | None = None,
) -> PipelineResult:
    from tailorlm.bases import with_base_dir
    from tailorlm.evaluate import evaluate, summary_table
    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.register import GateFailed, register
    from tailorlm.train import train

    say = progress.say
    if wrong := problems(project, workspace=workspace):  # every problem before the first stage, not one per stage
        raise ConfigError(f"{len(wrong)} problem(s) in the project\n{describe(wrong)}")
    project = with_base_dir(workspace, project, progress=progress)
    say("[bold]1/4 prepare[/] ingest, clean, redact, deduplicate, split")
    prepared = prepare(workspace, project, ingest=ingest, force=force, progress=progress)
    say(
        f"    dataset {prepared.dataset.name}@{prepared.dataset.version}"
        f"{' (unchanged)' if prepared.skipped else ''}: {_counts(prepared.counts)}"
    )

    say(f"[bold]2/4 train[/] {project.train.method} on {project.base_model}")
    trained = train(workspace, project, dataset=prepared.dataset.id, force=force, progress=progress)
    say(
        f"    run {trained.run.id}{' (unchanged)' if trained.skipped else ''}: "
        f"{trained.plan.total_steps} steps, train loss {trained.metrics.get('train_loss', float('nan')):.3f}, "
        f"val loss {trained.metrics.get('eval_loss', float('nan')):.3f}"
    )

    say(f"[bold]3/4 evaluate[/] {', '.join(project.evaluate.baselines)} vs fine-tuned on the test split")
    evaluated = evaluate(workspace, project, runs=[trained.run.id], progress=progress)
    say(f"    evaluation {evaluated.evaluation.id}: {evaluated.path / 'report.html'}")
    say(table_of(*summary_table(evaluated.summary)))
    if evaluated.gate is not None:
        say(f"    gate {'passed' if evaluated.gate.passed else '[red]failed[/]'}:")
        for line in evaluated.gate.explain():
            say(f"      {line}")

    say("[bold]4/4 register[/]")
    model = None
    name = register_name or project.project
    existing = [m for m in workspace.registry.find("model", name=name) if m.meta_as(ModelMeta).run == trained.run.id]
    if existing and not force:
        model = existing[0]
        say(f"    {model.name}@{model.version} already points at this run")
    else:
        try:
            model = register(workspace, trained.run.id, name=name, system_prompt=project.system_prompt)
            say(f"    registered {model.name}@{model.version}")
        except GateFailed as error:
            say(f"    [red]not registered:[/] {error}")
    return PipelineResult(prepared, trained, evaluated, model)


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())


def table_of(headers: list[str], rows: list[list[Any]]) -> Any:
    """A table whose cells wrap instead of being cut (`finetun…`); see tailorlm.output."""
    from tailorlm.output import table

    return table(headers, rows)
