"""`tailorlm assess`: the decision a consultant would write before anyone trains, from the project and its data.

It reads the project's prepared dataset (or, before `prepare`, says so and works from the sources): the
task, examples per label, token volume, whether the need is behaviour and format (fine-tuning) or facts
that change (retrieval), what to try first, which method fits the hardware (the planner), the estimated
time, and the baselines to beat. Saved as `assessment.json` and `assessment.md` in the workspace.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from tailorlm.config import Project
from tailorlm.dataset_splits import load_split
from tailorlm.errors import NotFound
from tailorlm.train.memory import ModelShape, PlannerError
from tailorlm.train.plan import plan_hardware
from tailorlm.workspace import Workspace, atomic_write_json, atomic_write_text

FACT_KINDS = ("documents",)  # sources whose value is the facts they hold, not a way of answering


@dataclass
class Assessment:
    project: str
    task: str
    dataset: str | None
    examples: int
    per_label: dict[str, int]
    tokens: int
    fact_share: float
    need: str
    try_first: list[str]
    method: str
    hardware: str
    cost: str
    baselines: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"# Assessment of {self.project}",
            "",
            f"- Task: **{self.task}**; dataset {self.dataset or '(not prepared yet)'}: "
            f"{self.examples} training examples, ~{self.tokens:,} tokens",
        ]
        if self.per_label:
            lines.append("- Examples per label: " + ", ".join(f"{k} {v}" for k, v in sorted(self.per_label.items())))
        lines += [
            f"- Need: {self.need}",
            "- Try first: " + "; ".join(self.try_first),
            f"- Method for the hardware: {self.method} ({self.hardware})",
            f"- Cost: {self.cost}",
            "- Baselines to run before training: " + ", ".join(self.baselines),
        ]
        lines += [f"- Warning: {warning}" for warning in self.warnings]
        return "\n".join(lines) + "\n"


def assess(workspace: Workspace, project: Project, *, gpus: int = 1, gpu_memory_gib: float = 16.0) -> Assessment:
    """Assess `project` for `gpus` × `gpu_memory_gib` (the planner's default hardware: one 16 GB GPU)."""
    warnings: list[str] = []
    examples, dataset = [], None
    try:
        artifact = workspace.resolve("dataset", project.dataset_name)
        dataset = f"{artifact.name}@{artifact.version}"
        examples = load_split(workspace, artifact, "train")
    except NotFound:
        warnings.append("no prepared dataset yet: run `tailorlm prepare` first for counts and token volume")
    per_label = dict(Counter(e.label for e in examples if e.label)) if project.task == "classify" else {}
    words = sum(len(_text(e).split()) for e in examples)
    tokens = round(words * 1.3)  # ~1.3 tokens a word for English BPE vocabularies
    kinds = Counter(source.kind for source in project.sources)
    fact_share = sum(n for kind, n in kinds.items() if kind in FACT_KINDS) / max(1, sum(kinds.values()))
    if project.task in ("classify", "extract"):
        need = "behaviour and format (labels, fields): fine-tuning fits"
    elif fact_share >= 0.5:
        need = "mostly facts from documents: retrieval (RAG) first; fine-tune for tone and format on top"
    else:
        need = "behaviour and format (how the company answers): fine-tuning fits"
    try_first = ["a prompt with few-shot examples on the base model"]
    if fact_share > 0:
        try_first.append("RAG over the documents (facts that change belong in retrieval, not in weights)")
    try_first.append(
        f"LoRA on {project.base_model.name if hasattr(project.base_model, 'name') else project.base_model}"
    )
    if per_label and min(per_label.values()) < 20:
        warnings.append(f"labels with fewer than 20 examples: {sorted(k for k, v in per_label.items() if v < 20)}")
    if examples and len(examples) < 100:
        warnings.append(f"only {len(examples)} training examples: expect the baselines to be hard to beat")
    method, hardware, cost = _method(project, tokens, gpus, gpu_memory_gib)
    baselines = ["base", "few_shot"] + (["rag"] if fact_share > 0 else [])
    if project.task == "classify":
        baselines.append("TF-IDF + logistic regression")
    result = Assessment(
        project.project, project.task, dataset, len(examples), per_label, tokens, round(fact_share, 2), need,
        try_first, method, hardware, cost, baselines, warnings,
    )  # fmt: skip
    atomic_write_json(workspace.root / "assessment.json", result.to_json())
    atomic_write_text(workspace.root / "assessment.md", result.markdown())
    workspace.audit.append("assess", outputs=["assessment.json"], need=need, method=method)
    return result


def _text(example: Any) -> str:
    if example.messages is not None:
        return " ".join(message.content for message in example.messages)
    return example.text or ""


def _method(project: Project, tokens: int, gpus: int, memory: float) -> tuple[str, str, str]:
    base = project.base_model
    try:
        shape = ModelShape.from_config(base)
    except PlannerError as error:
        return project.train.method, f"not planned: {error}", "unknown"
    epochs = 3 if project.train.epochs == "auto" else project.train.epochs
    planned = plan_hardware(
        shape, gpus=gpus, gpu_memory_gib=memory, seq_len=project.train.max_length, tokens=tokens * epochs or None
    )
    if not planned.fits:
        return "none fits", planned.summary(), "n/a"
    cost = (
        f"~{planned.seconds_per_epoch / 60:.0f} GPU-minutes for {epochs} epoch(s) ({planned.throughput})"
        if planned.seconds_per_epoch
        else planned.throughput
    )
    return planned.chosen.setup.describe(), planned.summary(), cost
