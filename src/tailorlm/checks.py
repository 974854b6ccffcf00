"""Every check of a project that can be made before a stage runs, in one place, each naming its field.

    for problem in problems(project):   # what `tailorlm validate` prints, all at once
        print(problem)                  # sources[1].kind: 'email' is not a source for task 'classify' (...)

`prepare` and `train` call `problems(project, before=...)` and refuse to start with the same messages,
so what `validate` passes is not refused twenty minutes later, and what it refuses is refused by the
stage too. A check is one small function yielding `Problem`s plus one line in `CHECKS` naming the
stages it stops (`validate` reports them all). A project that doesn't parse never gets here: pydantic
names those fields when the file is loaded (`config.load_project`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tailorlm.config import Project

if TYPE_CHECKING:
    from tailorlm.workspace import Workspace

Stage = Literal["prepare", "train"]

# Synthesis writes question/answer conversations: only tasks that train on free answers take them.
SYNTHESIS_TASKS = ("chat", "generate")


@dataclass(frozen=True)
class Problem:
    """Something in a project that stops a stage; `field` is where in the project file it is."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def problems(project: Project, *, before: Stage | None = None, workspace: Workspace | None = None) -> list[Problem]:
    """Every problem of `project`; with `before`, only those that stop that stage.

    Args:
        workspace: Where registered base models are looked up; without one, a `base_model` that names
            a registered base is reported as unknown.
    """
    return [
        problem
        for check, stages in CHECKS
        if before is None or before in stages
        for problem in check(project, workspace)
    ]


def describe(found: list[Problem]) -> str:
    """The problems one per line, as the stages and `validate` print them."""
    return "\n".join(str(problem) for problem in found)


# --- the checks ----------------------------------------------------------------------------------


def source_paths(project: Project, workspace: Workspace | None) -> Iterator[Problem]:
    for index, source in enumerate(project.sources):
        path = project.resolve(source.path)
        if not path.exists():
            yield Problem(f"sources[{index}].path", f"not found: {source.path} (looked at {path})")


def source_kinds(project: Project, workspace: Workspace | None) -> Iterator[Problem]:
    """Each kind names a registered builder that feeds the project's task."""
    from tailorlm.prepare.builders import BUILDERS, kinds_for

    for index, source in enumerate(project.sources):
        spec = BUILDERS.get(source.kind)
        if spec is None:
            known = ", ".join(sorted(BUILDERS))
            yield Problem(f"sources[{index}].kind", f"unknown source kind {source.kind!r} (known: {known})")
        elif project.task not in spec.tasks:
            allowed = ", ".join(kinds_for(project.task))
            yield Problem(
                f"sources[{index}].kind",
                f"{source.kind!r} is not a source for task {project.task!r} (allowed: {allowed})",
            )


def synthesis(project: Project, workspace: Workspace | None) -> Iterator[Problem]:
    if project.prepare.synthesize is not None and project.task not in SYNTHESIS_TASKS:
        yield Problem(
            "prepare.synthesize",
            f"synthesis writes question/answer chat examples; it fits task 'chat' or 'generate' "
            f"(got {project.task!r}): remove prepare.synthesize or change the task",
        )


def iterate_synthesis(project: Project, workspace: Workspace | None, method: str | None = None) -> Iterator[Problem]:
    """`iterate.synthesize` needs a teacher, and a round that can learn from answers without a rejected one
    (`method` overrides `iterate.method`, as `tailorlm iterate --method` does)."""
    if not project.iterate.synthesize:
        return
    if project.prepare.synthesize is None:
        yield Problem(
            "iterate.synthesize",
            "asks the teacher of prepare.synthesize, and the project has none: set prepare.synthesize.teacher "
            "(an OpenAI-compatible endpoint on the premises) or iterate.synthesize: 0",
        )
    method = method or project.iterate.method
    if method in ("dpo", "orpo"):
        yield Problem(
            "iterate.synthesize",
            f"the teacher's examples have no rejected answer, so a {method} round can't learn from them: "
            "set iterate.method to sft or kto, or iterate.synthesize: 0",
        )


def base_model(project: Project, workspace: Workspace | None) -> Iterator[Problem]:
    """`base_model` names a model that can be loaded, without importing anything: a model directory
    (config, tokenizer, weights), a readable GGUF file, an installed model package, or a registered base
    (looked up when there is a workspace)."""
    from tailorlm.bases import PACKAGED, BaseModelError, resolve_base
    from tailorlm.bases.gguf import read_gguf_info
    from tailorlm.bases.packages import locate
    from tailorlm.modeling import ModelDirError, check_model_dir

    reference = str(project.base_model)
    path = project.resolve(project.base_model)
    try:
        if path.is_file() or reference.endswith(".gguf"):
            read_gguf_info(path)
        elif path.exists() or "/" in reference or reference.startswith("."):
            check_model_dir(path)  # a path: names what is missing, or that nothing is there
        elif workspace is not None and workspace.registry.find("base", name=reference, status="complete"):
            check_model_dir(resolve_base(workspace, reference))
        elif reference in PACKAGED:
            locate(PACKAGED[reference])  # installed: imported on first use
        elif workspace is not None:
            resolve_base(workspace, reference)  # a name it doesn't know: raises, naming the registered ones
        else:
            raise BaseModelError(
                f"{reference!r} is not a directory, a .gguf file or an installed model package "
                f"({', '.join(PACKAGED)}); a registered base is looked up in a workspace (--workspace)"
            )
    except (ModelDirError, BaseModelError) as error:
        yield Problem("base_model", str(error).removeprefix("base_model: "))


# Each check and the stages it stops. prepare estimates token counts without a base model (the card
# says so), so only train needs one; train reads a registered dataset, not the sources. A project
# without sources is not a problem (it can train on an imported dataset); prepare refuses it itself.
Check = Callable[[Project, "Workspace | None"], Iterator[Problem]]
CHECKS: tuple[tuple[Check, frozenset[Stage]], ...] = (
    (base_model, frozenset({"train"})),
    (source_paths, frozenset({"prepare"})),
    (source_kinds, frozenset({"prepare"})),
    (synthesis, frozenset({"prepare"})),
    (iterate_synthesis, frozenset()),  # `tailorlm iterate` runs it itself, with its --method
)

__all__ = ["CHECKS", "SYNTHESIS_TASKS", "Check", "Problem", "Stage", "describe", "problems"]
