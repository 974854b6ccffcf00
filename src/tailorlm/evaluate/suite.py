"""What an evaluation will do, decided and validated before anything runs or is written: the runs
and dataset, the cases, the metrics, the candidates with their models and prompts, the judge.

Every problem a user can fix (an unknown metric, a run without a model, a malformed case file, a
judge or endpoint that is down or not allowlisted, an unknown objective) is an `EvalError` from
`plan_suite`, so a failed evaluation leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailorlm.bases import BaseModelError, resolve_base
from tailorlm.config import Project
from tailorlm.endpoints import EndpointError, endpoint_host
from tailorlm.evaluate.baselines import (
    BASELINES,
    GENERATIVE,
    BM25Retriever,
    Candidate,
    DenseRetriever,
    PromptBuilder,
    document_passages,
    example_passages,
    pick_shots,
)
from tailorlm.evaluate.cache import model_fingerprint
from tailorlm.evaluate.cases import EvalCase, EvalError, cases_from_examples, load_cases_file
from tailorlm.evaluate.classify import LADDER, ClassifierCandidate, Embedder, LadderModel
from tailorlm.evaluate.endpoint_model import EndpointModel
from tailorlm.evaluate.gate import validate_objectives
from tailorlm.evaluate.generation import LocalModel, Messages
from tailorlm.evaluate.judge import Judge, JudgeConfig, load_human_labels
from tailorlm.evaluate.metrics import get_metric
from tailorlm.evaluate.metrics.multilabel import MULTI_LABEL_METRICS, split_labels
from tailorlm.evaluate.scoring import JUDGE_WIN, select_metrics
from tailorlm.formats.examples import Example
from tailorlm.registry import Artifact, RunMeta
from tailorlm.workspace import NotFound, Workspace, sha256_file, stable_hash

LOSS_TASKS = ("chat", "generate")


@dataclass
class Suite:
    """Everything an evaluation needs, validated."""

    task: str
    name: str
    dataset: Artifact | None
    runs: list[Artifact]
    cases: list[EvalCase]
    metrics: list[str]
    options: dict[str, Any]
    candidates: list[Candidate]
    conversations: dict[str, list[Messages]]
    contexts: dict[str, list[list[str]]]
    models: dict[str, Any]  # LocalModel, EndpointModel, ClassifierCandidate or LadderModel
    reference: str
    key: str
    judge: Judge | None = None
    judge_pointwise: bool = False
    judge_pairs: list[str] = field(default_factory=list)
    human_labels: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def finetuned(self) -> list[Candidate]:
        """The plain fine-tuned candidates (one per run), which the gate and the judge's pairs use."""
        return [c for c in self.candidates if c.kind == "finetuned" and c.strategy in ("plain", "input")]

    def close(self) -> None:
        for model in self.models.values():
            model.unload()
        if self.judge:
            self.judge.close()


def _model_dir_ok(path: Path) -> bool:
    weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return path.is_dir() and weights and any((path / f).is_file() for f in ("adapter_config.json", "config.json"))


def resolve_runs(workspace: Workspace, refs: Sequence[str], dataset: Artifact | None) -> list[tuple[Artifact, Any]]:
    """Runs (ids or registered models) with their loadable model; the latest run when none is named."""
    from tailorlm.modeling import resolve_model

    if not refs:
        complete = [
            r
            for r in workspace.registry.find("run", status="complete")
            if dataset is None or r.meta_as(RunMeta).dataset == dataset.id
        ]
        refs = [complete[0].id] if complete else []
    resolved = []
    for ref in dict.fromkeys(refs):
        try:
            model = resolve_model(workspace, ref)
            run = workspace.registry.get(model.run_id)
        except NotFound as error:  # before KeyError: NotFound is one
            raise EvalError(f"{ref} can't be evaluated: {error}", hint=error.hint) from None
        except KeyError:
            raise EvalError(f"no run {ref!r} in this workspace (see `tailorlm runs`)") from None
        if run.status != "complete":
            raise EvalError(f"run {run.id} is {run.status}: it has no model to evaluate (resume or retrain it)")
        if not _model_dir_ok(model.artifact_dir):
            raise EvalError(f"run {run.id} has no model: {model.artifact_dir} is missing or has no weights")
        resolved.append((run, model))
    return resolved


def resolve_dataset(
    workspace: Workspace, project: Project, runs: list[Artifact], has_cases_file: bool
) -> Artifact | None:
    """The first run's dataset, else the project's latest; None when only a cases file is evaluated."""
    try:
        if runs and (dataset_id := runs[0].meta_as(RunMeta).dataset):
            return workspace.registry.get(dataset_id)
        return workspace.resolve("dataset", project.dataset_name)
    except (NotFound, KeyError) as error:
        if has_cases_file:
            return None
        raise EvalError(f"no dataset to evaluate on: {error}; run `tailorlm prepare` or give a cases file") from None


def _labels(examples: Sequence[Example], cases: Sequence[EvalCase]) -> list[str]:
    labels: set[str | None] = {e.label or e.target for e in examples if e.is_chat}
    labels |= {c.label if c.label is not None else c.expected for c in cases}
    return sorted(label for label in labels if label)


def _candidates(
    baselines: Sequence[str],
    base_model: Path,
    resolved: Sequence[tuple[Artifact, Any]],
    endpoints: Sequence[str],
    fingerprint: Callable[[Path], str],
) -> tuple[dict[str, Any], list[Candidate], dict[str, str]]:
    """The local models with their candidates, and the endpoints by name (connected later)."""
    from tailorlm.classifier import is_classifier

    models: dict[str, Any] = {}
    candidates: list[Candidate] = []
    generative = [b for b in baselines if b in GENERATIVE]
    if generative:
        models["base"] = LocalModel("base", base_model, None, fingerprint(base_model))
        candidates += [Candidate(b, "baseline", "base", "plain" if b == "base" else b) for b in generative]
    candidates += [Candidate(b, "baseline", b, "input") for b in baselines if b in LADDER]
    for run, model in resolved:
        name = "finetuned" if len(resolved) == 1 else run.id
        if is_classifier(model.artifact_dir):
            models[run.id] = ClassifierCandidate(run.id, model.artifact_dir, model.base_model)
            candidates.append(Candidate(name, "finetuned", run.id, "input", run=run.id))
            continue
        models[run.id] = LocalModel(
            run.id,
            model.base_model,
            model.artifact_dir,
            f"{fingerprint(model.base_model)}:{fingerprint(model.artifact_dir)}",
        )
        candidates.append(Candidate(name, "finetuned", run.id, "plain", run=run.id))
        if "rag" in baselines:
            candidates.append(Candidate(f"{name}+rag", "finetuned", run.id, "rag", run=run.id))
    urls: dict[str, str] = {}  # endpoints are connected last, once everything else is valid
    for index, spec in enumerate(endpoints, start=1):
        name, _, url = spec.partition("=") if "=" in spec.split("://")[0] else ("", "", spec)
        name = name or ("endpoint" if len(endpoints) == 1 else f"endpoint{index}")
        try:
            endpoint_host(url)
        except EndpointError as error:
            raise EvalError(str(error)) from None
        if name in models or any(c.name == name for c in candidates):
            raise EvalError(f"endpoint name {name!r} is already a candidate; name it: NAME=URL")
        urls[name] = url
        candidates.append(Candidate(name, "endpoint", name, "plain"))
    return models, candidates, urls


def _generates(base_model: Path) -> bool:
    """Whether a model folder holds a generative (causal LM) model rather than an encoder."""
    import json

    config = json.loads((base_model / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    return (
        bool(config.get("is_decoder"))
        or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
        or (not architectures and config.get("model_type") not in ("bert", "roberta", "distilbert", "modernbert"))
    )


def _ladder(
    project: Project, baselines: Sequence[str], train: Sequence[Example], labels: list[str], base_model: Path
) -> dict[str, LadderModel]:
    """The classification baselines that need no generation, fitted on the train split."""
    from tailorlm.classifier import text_to_classify

    wanted = [b for b in baselines if b in LADDER]
    if not wanted:
        return {}
    pairs = [(text_to_classify(e), str(e.label or e.target)) for e in train if e.is_chat]
    if not pairs and any(b != "label_similarity" for b in wanted):
        raise EvalError(f"baselines {wanted} learn from the train split, and it is empty")
    settings = project.evaluate
    path = project.resolve(settings.rag_embedding_model) if settings.rag_embedding_model else base_model
    embedder = Embedder(path) if any(b != "tfidf" for b in wanted) else None
    return {b: LadderModel(b, pairs, labels, embedder=embedder, k=settings.knn_k) for b in wanted}


def _conversations(
    workspace: Workspace,
    project: Project,
    dataset: Artifact | None,
    train: Sequence[Example],
    cases: Sequence[EvalCase],
    candidates: Sequence[Candidate],
) -> tuple[dict[str, list[Messages]], dict[str, list[list[str]]], dict[str, Any]]:
    """Each candidate's conversation per case (few-shot turns, retrieved passages), the passages'
    sources per case for rag candidates, and what the report says about the shots and the corpus."""
    settings, task = project.evaluate, project.task
    strategies = {c.strategy for c in candidates}
    builder = PromptBuilder(project.system_prompt, rag_k=settings.rag_k)
    info: dict[str, Any] = {}
    if "few_shot" in strategies:
        builder.shots = pick_shots(train, settings.few_shot_k, task=task)
        if not builder.shots and settings.few_shot_k:
            raise EvalError("the few_shot baseline needs a train split to draw examples from")
        info["few_shot"] = {"k": len(builder.shots), "shots": [s.id for s in builder.shots]}
    contexts: dict[str, list[list[str]]] = {}
    retrieved: list[Any] = []
    if "rag" in strategies:
        passages = document_passages(workspace, dataset) if dataset else []
        corpus = "documents" if passages else "train split"
        passages = passages or example_passages(train)
        embedding = getattr(settings, "rag_embedding_model", None)
        builder.retriever = (
            DenseRetriever(passages, project.resolve(embedding)) if embedding else BM25Retriever(passages)
        )
        retrieved = [builder.retrieve(case) for case in cases]
        info["rag"] = {
            "corpus": corpus,
            "passages": len(passages),
            "k": settings.rag_k,
            "retriever": "dense" if embedding else "bm25",
        }
    conversations: dict[str, list[Messages]] = {}
    for candidate in candidates:
        if candidate.strategy == "input":
            conversations[candidate.name] = [[{"role": "user", "content": c.classify_text}] for c in cases]
        elif candidate.strategy == "rag":
            conversations[candidate.name] = [builder.rag(c, p) for c, p in zip(cases, retrieved, strict=True)]
            contexts[candidate.name] = [[p.source for p in found] for found in retrieved]
        elif candidate.strategy == "few_shot":
            conversations[candidate.name] = [builder.few_shot(c) for c in cases]
        else:
            conversations[candidate.name] = [builder.plain(c) for c in cases]
    return conversations, contexts, info


def plan_suite(
    workspace: Workspace,
    project: Project,
    *,
    runs: Sequence[str],
    dataset: str | None,
    cases_file: Path | None,
    baselines: Sequence[str] | None,
    endpoints: Sequence[str] | None,
    gate: bool,
    judge: JudgeConfig | str | None,
    reference: str | None,
) -> Suite:
    """Validate and assemble an evaluation; raises `EvalError` before anything is written."""
    from tailorlm.dataset_splits import load_split
    from tailorlm.modeling import ModelDirError, check_model_dir

    settings = project.evaluate
    task = project.task
    chosen_baselines = list(dict.fromkeys(settings.baselines if baselines is None else baselines))
    unknown = [b for b in chosen_baselines if b not in BASELINES]
    if unknown:
        raise EvalError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    multi_label = task == "classify" and project.train.multi_label  # label sets: their own metrics
    try:
        default = list(MULTI_LABEL_METRICS) if multi_label and not settings.metrics else settings.metrics
        metrics = select_metrics(task, default, list(settings.objectives))
    except ValueError as error:
        raise EvalError(f"evaluate.metrics: {error}") from None

    try:
        early_dataset = workspace.resolve("dataset", dataset) if dataset else None
    except NotFound as error:
        raise EvalError(str(error)) from None
    resolved = resolve_runs(workspace, list(runs), early_dataset)
    run_artifacts = [run for run, _ in resolved]
    dataset_artifact = early_dataset or resolve_dataset(workspace, project, run_artifacts, cases_file is not None)
    if gate and not settings.objectives:
        raise EvalError("the gate needs objectives: set evaluate.objectives in the project file")
    if gate and not resolved:
        raise EvalError("the gate checks a fine-tuned run, and there is none to evaluate (train one first)")

    test = load_split(workspace, dataset_artifact, "test") if dataset_artifact else []
    if settings.limit:
        test = test[: settings.limit]
    cases = cases_from_examples(test)
    if cases_file is not None:
        extra = load_cases_file(Path(cases_file))
        clash = {c.id for c in cases} & {c.id for c in extra}
        if clash:
            raise EvalError(f"{cases_file}: case id(s) {sorted(clash)} are also ids of test examples")
        cases += extra
    if not cases:
        where = f"the test split of {dataset_artifact.name}@{dataset_artifact.version}" if dataset_artifact else "it"
        raise EvalError(f"nothing to evaluate: {where} is empty; add test data or a cases file")
    train = load_split(workspace, dataset_artifact, "train") if dataset_artifact else []

    options: dict[str, Any] = {}
    if any("labels" in get_metric(m).options for m in metrics):
        options["labels"] = _labels(train + test, cases)
        if multi_label:
            separator = project.train.label_separator
            options["labels"] = sorted({part for cell in options["labels"] for part in split_labels(cell, separator)})
    if any("separator" in get_metric(m).options for m in metrics):
        options["separator"] = project.train.label_separator

    try:
        base_model = check_model_dir(
            resolved[0][1].base_model if resolved else resolve_base(workspace, project.base_model, root=project.root)
        )
    except (ModelDirError, BaseModelError) as error:
        raise EvalError(str(error)) from None
    fingerprints: dict[Path, str] = {}

    def fingerprint(path: Path) -> str:
        if path not in fingerprints:
            fingerprints[path] = model_fingerprint(path)
        return fingerprints[path]

    default_baselines = baselines is None and "baselines" not in settings.model_fields_set
    if default_baselines and task == "classify" and not _generates(base_model):
        chosen_baselines = list(LADDER)  # the default `base` can't run on an encoder: its ladder instead
    if any(b in GENERATIVE for b in chosen_baselines) and not _generates(base_model):
        raise EvalError(
            f"baselines {[b for b in chosen_baselines if b in GENERATIVE]} ask the base model to write answers, but "
            f"{base_model.name} is an encoder that can't generate; for task classify use "
            f"{', '.join(LADDER)} (evaluate.baselines)"
        )
    if any(b in LADDER for b in chosen_baselines) and task != "classify":
        raise EvalError(f"baselines {', '.join(LADDER)} label texts: they are for task classify (got {task!r})")
    models, candidates, urls = _candidates(chosen_baselines, base_model, resolved, endpoints or [], fingerprint)
    models.update(_ladder(project, chosen_baselines, train, options.get("labels") or _labels(train, cases), base_model))
    if not candidates:
        raise EvalError("nothing to evaluate: no run, no baseline and no endpoint")

    others = [c.name for c in candidates if c.kind != "finetuned"]
    validate_objectives(settings.objectives, others, baselines=[c.name for c in candidates if c.kind == "baseline"])
    if reference is None:
        reference = "base" if "base" in others else (others[0] if others else candidates[0].name)
    if reference not in [c.name for c in candidates]:
        raise EvalError(f"reference {reference!r} is not a candidate; candidates: {[c.name for c in candidates]}")

    conversations, contexts, info = _conversations(workspace, project, dataset_artifact, train, cases, candidates)

    # judge -----------------------------------------------------------------------------------
    judge_config = judge if judge is not None else getattr(settings, "judge", None)
    objectives = set(settings.objectives)
    pointwise = "judge" in (settings.metrics or []) or "judge" in objectives
    pairs = [name[len(JUDGE_WIN) :] for name in objectives if name.startswith(JUDGE_WIN)]
    if judge_config is not None and settings.metrics is None:
        pointwise = True
    if pointwise and resolved:
        pairs = list(dict.fromkeys(pairs + others))
    connected = None
    labels: list[dict[str, Any]] = []
    if pointwise or pairs:
        if judge_config is None:
            needs = "metric 'judge'" if pointwise else f"objective {JUDGE_WIN}{pairs[0]}"
            raise EvalError(f"{needs} needs a judge: set the judge endpoint (evaluate.judge / --judge URL)")
        config = JudgeConfig.coerce(judge_config)
        labels = load_human_labels(project.resolve(config.human_labels)) if config.human_labels else []
        connected = Judge(config)
    try:
        for name, url in urls.items():
            models[name] = EndpointModel(name, url)
    except EvalError:
        for model in models.values():
            model.unload()
        if connected:
            connected.close()
        raise

    key = stable_hash(
        {
            "dataset": dataset_artifact.hash if dataset_artifact else None,
            "runs": [r.hash for r in run_artifacts],
            "base": fingerprint(base_model),
            "cases_file": sha256_file(Path(cases_file)) if cases_file else None,
            "evaluate": settings.model_dump(mode="json"),
            "baselines": chosen_baselines,
            "endpoints": list(endpoints or []),
            "system_prompt": project.system_prompt,
            "task": task,
            **({"multi_label": project.train.label_separator} if multi_label else {}),
        }
    )
    name = dataset_artifact.name if dataset_artifact else Path(cases_file or "cases").stem
    return Suite(
        task=task,
        name=name,
        dataset=dataset_artifact,
        runs=run_artifacts,
        cases=cases,
        metrics=metrics,
        options=options,
        candidates=candidates,
        conversations=conversations,
        contexts=contexts,
        models=models,
        reference=reference,
        key=key,
        judge=connected,
        judge_pointwise=pointwise,
        judge_pairs=[p for p in pairs if p in others] if resolved else [],
        human_labels=labels,
        info=info,
    )
