"""The `train` verb: a dataset and a base model in, a run folder with an adapter (or full weights) out.

`train()` resolves the dataset, picks the recipe for the task and method (`recipes.py`: supervised
answers in `sft.py`, ...), has it tokenise the splits, plans device defaults, and hands over to it.
A running run records its owner (pid, host, heartbeat), so a killed one shows as `interrupted`.
SIGTERM or Ctrl-C checkpoints at the end of the current step and marks the run `interrupted`; a run
killed outright keeps its complete checkpoints. `train(resume=RUN)` continues the learning-rate
schedule and the data position exactly.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tailorlm import offline
from tailorlm.bases import resolve_base
from tailorlm.checks import describe, problems
from tailorlm.config import Project, TrainSettings
from tailorlm.errors import UserError
from tailorlm.jobs import record_output
from tailorlm.lifecycle import current_owner, heartbeat, owner_alive, signal_of, stop_signals
from tailorlm.modeling import check_model_dir, load_tokenizer
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact, RunMeta
from tailorlm.train import distributed
from tailorlm.train.checkpoints import last_checkpoint
from tailorlm.train.data import EmptyDatasetError
from tailorlm.train.plan import Plan, describe_plan, make_plan
from tailorlm.train.recipes import recipe_for
from tailorlm.train.strategy import check_resume
from tailorlm.train.strategy import configs as strategy_configs
from tailorlm.workspace import (
    Workspace,
    atomic_write_json,
    atomic_write_text,
    new_id,
    read_jsonl,
    sha256_tree,
    stable_hash,
)


class TrainError(UserError, ValueError):
    """A run that can't start or go on; the message says what to change."""


@dataclass
class TrainResult:
    run: Artifact
    run_dir: Path
    plan: Plan
    metrics: dict[str, Any]
    data: dict[str, Any]
    skipped: bool = False

    def metrics_rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir / "metrics.jsonl") if (self.run_dir / "metrics.jsonl").exists() else []


def train(
    workspace: Workspace,
    project: Project,
    *,
    dataset: str | None = None,
    resume: str | None = None,
    force: bool = False,
    callbacks: list[Any] | None = None,
    progress: Progress = SILENT,
) -> TrainResult:
    """Fine-tune `project.base_model` on a registered dataset (default: the project's latest).

    Args:
        dataset: `name`, `name@version` or a dataset id; default the project's dataset.
        resume: a run id to continue from its last checkpoint (its own settings are used).
        force: train even if a complete run with the same inputs and settings exists.
        callbacks: extra `transformers.TrainerCallback`s (benchmarks, tests).
        progress: told the plan (device, precision, steps, epochs) before the first step, then the
            steps with loss, tokens/s and ETA.
    """
    offline.enforce(project.allow_hosts if project else ())
    distributed.check_world()
    with stop_signals(defer=True):  # SIGTERM/Ctrl-C: checkpoint at the end of the step, then stop
        if resume:
            return _resume(workspace, resume, callbacks=callbacks, progress=progress)
        return _start(workspace, project, dataset=dataset, force=force, callbacks=callbacks, progress=progress)


def _start(
    workspace: Workspace,
    project: Project,
    *,
    dataset: str | None,
    force: bool,
    callbacks: list[Any] | None,
    progress: Progress,
) -> TrainResult:
    if wrong := problems(project, before="train", workspace=workspace):
        raise TrainError(describe(wrong))
    settings = project.train
    base_model = check_model_dir(resolve_base(workspace, project.base_model, root=project.root))
    dataset_artifact = workspace.resolve("dataset", dataset or project.dataset_name)
    key = stable_hash(
        {
            "dataset": dataset_artifact.hash,
            "base": str(base_model),
            "train": settings.model_dump(),
            "system_prompt": project.system_prompt,
        }
    )
    done = distributed.from_main(None if force else workspace.find_complete("run", key))
    if done is not None:
        run_dir = workspace.path_of(done)
        done_meta = done.meta_as(RunMeta)
        return TrainResult(done, run_dir, Plan(**done_meta.plan), done_meta.metrics, done_meta.data, True)

    run_id = distributed.new_run_id(lambda: new_id("run"))  # one run per launch: every rank checkpoints into it
    run_dir = workspace.run_dir(run_id)
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=bool(os.environ.get(distributed.RUN_ID_ENV)))
        _write_config(run_dir, base_model, dataset_artifact, settings, project)
    return _run(
        workspace, run_id, run_dir, base_model, dataset_artifact, settings, project.task, key, callbacks, progress
    )


def _write_config(
    run_dir: Path, base_model: Path, dataset_artifact: Artifact, settings: TrainSettings, project: Project
):
    atomic_write_text(
        run_dir / "config.yaml",
        yaml.safe_dump(
            {
                "base_model": str(base_model),
                "dataset": dataset_artifact.id,
                "system_prompt": project.system_prompt,
                "task": project.task,
                "train": settings.model_dump(mode="json"),
            },
            sort_keys=False,
        ),
    )


def _resume(workspace: Workspace, run_ref: str, *, callbacks: list[Any] | None, progress: Progress) -> TrainResult:
    from tailorlm.train.checkpoints import remove_partial, resume_point

    try:
        run = workspace.registry.get(run_ref)
    except KeyError:
        raise TrainError(f"no run {run_ref!r} in this workspace (see `tailorlm runs`)") from None
    run_dir = workspace.path_of(run)
    if run.status == "complete":
        raise TrainError(f"run {run.id} is already complete; nothing to resume")
    owner = run.meta.owner
    if run.status == "running" and owner is not None and owner.pid != os.getpid() and owner_alive(owner):
        raise TrainError(f"run {run.id} is still running (pid {owner.pid} on {owner.host}); stop it before resuming")
    remove_partial(run_dir)  # what a kill mid-save left
    if last_checkpoint(run_dir) is None:
        raise TrainError(f"run {run.id} has no checkpoint to resume from (it stopped before the first save)")
    checkpoint = resume_point(run_dir)
    if checkpoint is None:  # only the last step's: trained again from the start, to the same weights
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    settings = TrainSettings.model_validate(config["train"])
    dataset_artifact = workspace.registry.get(config["dataset"])
    return _run(
        workspace,
        run.id,
        run_dir,
        Path(config["base_model"]),
        dataset_artifact,
        settings,
        config.get("task", "chat"),  # runs from before the task was recorded were all supervised
        run.key,
        callbacks,
        progress,
        resume_from=checkpoint,
        created_at=run.created_at,
    )


def _run(
    workspace: Workspace,
    run_id: str,
    run_dir: Path,
    base_model: Path,
    dataset: Artifact,
    settings: TrainSettings,
    task: str,
    key: str | None,
    callbacks: list[Any] | None,
    progress: Progress,
    resume_from: Path | None = None,
    created_at: str | None = None,
) -> TrainResult:
    recipe_name, recipe = recipe_for(settings, task)
    tokenizer = load_tokenizer(base_model)
    train_split, val_split = recipe.load_splits(tokenizer, workspace, dataset, settings)
    if not train_split.rows:
        dropped = train_split.summary().get("dropped_no_target", 0)
        raise EmptyDatasetError(
            f"dataset {dataset.name}@{dataset.version} has no trainable example in its train split "
            f"({dropped} dropped: no answer token left within max_length {settings.max_length})"
        )
    # rank 0's plan on every rank: the precision micro-benchmark and the strategy's memory check agree
    plan = distributed.from_main(make_plan(settings, len(train_split.rows), model_dir=base_model, recipe=recipe_name))
    progress.say(describe_plan(plan, settings.method, len(train_split.rows), resume_from))
    check_resume(resume_from, plan.strategy, run_id, plan.device)
    if distributed.is_main():  # the strategy's configs, generated from the project file, beside the run's
        run_options = {"micro_batch": settings.batch_size, "gradient_accumulation": settings.gradient_accumulation}
        for name, config in strategy_configs(plan.strategy, **run_options, precision=plan.precision).items():
            atomic_write_json(run_dir / name, config)
    data = {"train": train_split.summary(), "val": val_split.summary()}
    meta = RunMeta(
        method=settings.method,
        recipe=recipe_name,
        base_model=str(base_model),
        dataset=dataset.id,
        plan=plan.to_json(),
        data=data,
        owner=current_owner(),
    )
    run = Artifact(
        id=run_id,
        kind="run",
        name=dataset.name,
        hash=dataset.hash,
        key=key,
        path=workspace.relative(run_dir),
        status="running",
        meta=meta,
        **({"created_at": created_at} if created_at else {}),  # a resumed run keeps its start
    )
    main = distributed.is_main()  # under torchrun only rank 0 writes the registry, the audit log and files
    if main:
        workspace.registry.add(
            run, parents=[dataset.id, *getattr(train_split, "parents", [])]
        )  # + a recipe's start model
        record_output(workspace, run_id)  # inside a queued job: the run it resumes if its worker dies
        workspace.audit.append(
            "train.start",
            inputs=[dataset.id, str(base_model)],
            outputs=[run_id],
            method=settings.method,
            resumed_from=str(resume_from) if resume_from else None,
        )
    try:
        with heartbeat(workspace.registry, run_id) if main else contextlib.nullcontext():
            metrics = recipe.fine_tune(
                run_dir=run_dir,
                base_model=base_model,
                tokenizer=tokenizer,
                settings=settings,
                plan=plan,
                train_split=train_split,
                val_split=val_split,
                resume_from=resume_from,
                callbacks=callbacks,
                progress=progress,
                tracking_dir=workspace.tracking_dir,
            )
    except KeyboardInterrupt as stop:
        if main:
            checkpoint = last_checkpoint(run_dir)
            workspace.registry.update(run_id, status="interrupted", meta=meta.replace(owner=None))
            workspace.audit.append(
                "train.interrupted",
                outputs=[run_id],
                signal=signal_of(stop),
                checkpoint=checkpoint.name if checkpoint else None,
            )
        raise
    except BaseException as error:
        if main:
            workspace.registry.update(run_id, status="failed", meta=meta.replace(error=str(error), owner=None))
            workspace.audit.append("train.failed", outputs=[run_id], error=str(error))
        raise
    artifact_dir = run_dir / ("model" if settings.method == "full" else "adapter")
    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    # the plan as it ran: a recipe may have turned packing off for a model whose attention can't keep examples apart
    meta = meta.replace(plan=plan.to_json(), metrics=metrics, artifact=artifact_dir.name, owner=None)
    if not main:
        return TrainResult(run, run_dir, plan, metrics, data)
    atomic_write_json(
        run_dir / "run.json", {"id": run_id, "status": "complete", **meta.model_dump(exclude={"error", "owner"})}
    )
    run = workspace.registry.update(
        run_id,
        status="complete",
        hash=sha256_tree(artifact_dir),
        meta=meta,
    )
    workspace.audit.append("train.complete", inputs=[dataset.id], outputs=[run_id], hash=run.hash)
    return TrainResult(run, run_dir, plan, metrics, data)
