"""The project file `tailorlm.yaml`: pydantic models whose field descriptions are the documentation.

`load_project(path)` reads and validates a file; errors name the user's field, e.g.
`train.lora.r: Input should be greater than 0 (got 0)`. Relative paths are resolved against the
folder that holds the project file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tailorlm.errors import UserError

Task = Literal["chat", "classify", "extract", "generate", "cpt"]
TASKS: tuple[Task, ...] = get_args(Task)  # the one list of tasks; builders and metrics name theirs from it
Method = Literal["full", "lora", "qlora", "dora", "dpo", "kto", "orpo"]
PREFERENCE_METHODS: tuple[str, ...] = ("dpo", "kto", "orpo")  # trained on LoRA by train/preference.py
BEATS_BASELINES = "beats_baselines"  # the objective "better than every baseline", see evaluate.objectives


class Settings(BaseModel):
    """Base of every section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Source(Settings):
    path: Path = Field(description="A file or folder of company data, relative to the project file.")
    kind: str = Field(
        description="How the source becomes examples: the name of a builder (`faq`, `email`, `table`, ...). "
        "docs/prepare.md#builders lists every kind, what it makes and the tasks it feeds; "
        "`tailorlm validate` names the kinds a task takes."
    )
    question: str = Field("question", description="faq: the column holding the question.")
    answer: str = Field("answer", description="faq: the column holding the answer.")
    input: str | None = Field(None, description="table/extraction: the column holding the input text.")
    label: str | None = Field(None, description="table: the column holding the label (category).")
    fields: list[str] | None = Field(
        None, description="table/extraction: the columns to extract as JSON (extraction task)."
    )
    instruction: str | None = Field(
        None, description="The instruction put before each input (a sensible default per kind when empty)."
    )
    skip_invalid: bool = Field(
        False, description="dataset: skip invalid JSONL lines (counted in the card) instead of refusing the file."
    )
    split: Literal["train", "val", "test"] | None = Field(
        None,
        description="Pin every example of this source to one split (e.g. `test` for an audited test set or a "
        "benchmark's official test file): never split further, never dropped as a duplicate; other sources' "
        "duplicates of it are dropped instead.",
    )


class LoraSettings(Settings):
    r: int = Field(16, gt=0, description="Rank of the low-rank update; higher learns more, costs more.")
    alpha: int = Field(32, gt=0, description="Scaling numerator; the update is scaled by alpha / r.")
    dropout: float | Literal["auto"] = Field(
        "auto",
        description="Dropout on the adapter's input during training. auto: 0 on CPU (its random masks cost ~16% "
        "of a step) and where the memory planner finds the GPU's memory binding (dropout keeps a copy of every "
        "adapted layer's input), else 0.05; the value used is in the plan line and the run.",
    )

    @field_validator("dropout")
    @classmethod
    def _dropout_range(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0 <= value < 1:
            raise ValueError(f"must be ≥ 0 and < 1 (got {value})")
        return value

    targets: str | list[str] = Field(
        "all-linear", description="Modules to adapt: 'all-linear' or a list of module names (q_proj, ...)."
    )


class PreferenceSettings(Settings):
    start_from: str | None = Field(
        None,
        description="dpo/kto/orpo: a registered model (name@version) fine-tuned with LoRA; its adapter is where "
        "training starts and, for dpo/kto, the reference the model is kept close to. Default: a new adapter on "
        "the base model, which is then the reference.",
    )
    beta: float = Field(
        0.1, gt=0, description="dpo/kto: how close to the reference the model stays (higher: closer); orpo: λ."
    )


class ClassifySettings(Settings):
    """How sure a classification head must be before it answers (task classify, head classification)."""

    target_precision: float = Field(
        0.9,
        gt=0,
        le=1,
        description="The abstain threshold is the lowest confidence whose answers reach this precision on "
        "the validation split; below it the model answers 'needs a person'.",
    )
    min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A fixed abstain threshold instead of one chosen for target_precision (0: never abstain).",
    )
    calibrate: bool = Field(True, description="Fit a temperature on the validation split (calibrated confidences).")


class TrainSettings(Settings):
    method: Method = Field(
        "lora",
        description="full: every weight; lora: low-rank adapters; qlora: LoRA on a 4-bit NF4 base "
        "(bitsandbytes, double quantization); dora: weight-decomposed LoRA; dpo, kto, orpo: preference "
        "training (TRL) of a LoRA adapter on a feedback dataset (pairs for dpo/orpo, rated answers for kto).",
    )
    epochs: int | Literal["auto"] = Field(
        "auto",
        description="Passes over the training split; `auto` picks from its size (see docs/training.md).",
    )
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float | None = Field(
        None, gt=0, description="Peak learning rate; default 2e-4 for adapters, 2e-5 for full fine-tuning."
    )
    batch_size: int = Field(8, gt=0, description="Examples per device per step.")
    gradient_accumulation: int = Field(1, gt=0, description="Steps accumulated before each optimizer update.")
    max_length: int = Field(
        1024, gt=8, description="Tokens per example; longer examples are truncated and counted (see the run)."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up the learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Learning-rate schedule.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it, else fp16; on CPU bf16 autocast only where a "
        "micro-benchmark at plan time measures it clearly faster than fp32 (recorded in the run), else fp32.",
    )
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description="Trade compute for memory; auto: on for GPUs with full fine-tuning, off on CPU."
    )
    group_by_length: bool = Field(True, description="Batch examples of similar length together (less padding).")
    packing: bool | Literal["auto"] = Field(
        "auto",
        description="Supervised fine-tuning: put several short examples of a batch into one row (no wider than "
        "the batch's longest example, so never more compute than padding), positions restarting per example and "
        "attention never crossing examples. auto: on where the model's attention keeps packed examples apart "
        "(checked on the loaded model before training); a batch whose examples can't share a row stays padded.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Adapter settings (lora/qlora/dora).")
    preference: PreferenceSettings = Field(
        default_factory=PreferenceSettings, description="Preference training (dpo/kto/orpo)."
    )
    eval_steps: int | None = Field(None, gt=0, description="Validation loss every N steps (default: ~5 per run).")
    save_steps: int | None = Field(None, gt=0, description="Checkpoint every N steps (default: ~2 per run).")
    logging_steps: int = Field(5, gt=0, description="Write metrics.jsonl every N steps.")
    seed: int = Field(42, description="Seed for data order, initialisation and dropout.")
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"] = Field(
        "auto",
        description="How the processes of `tailorlm train --gpus N` (or --processes N) share the work: ddp (each "
        "holds the whole model), fsdp (FSDP2: weights, gradients and optimizer states sharded), deepspeed_zero2 / "
        "deepspeed_zero3 (needs DeepSpeed and GPUs); auto: ddp when the planner finds the run fits on one device, "
        "else fsdp. The choice and why are printed and recorded; its config is written into the run folder.",
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="Also log to these trackers, offline: TensorBoard in the run's tensorboard/ folder, MLflow in "
        "a SQLite store in the workspace (mlruns/mlflow.db), W&B in offline mode only. metrics.jsonl stays the record.",
    )
    head: Literal["auto", "classification", "generative"] = Field(
        "auto",
        description="task classify: `classification` puts a label head on the base model (one forward pass, "
        "calibrated probabilities); `generative` trains it to answer with the label; auto: classification.",
    )
    imbalance: Literal["weighted_loss", "sampling", "none"] = Field(
        "weighted_loss",
        description="Classification head: rare labels weigh more in the loss (inverse frequency), are drawn "
        "more often, or neither. The label counts are recorded in the run.",
    )
    multi_label: bool = Field(
        False, description="Classification head: several labels per example (sigmoid, one threshold per label)."
    )
    label_separator: str = Field(";", min_length=1, description="Multi-label: the separator inside a label cell.")
    classify: ClassifySettings = Field(
        default_factory=ClassifySettings, description="Classification head: calibration and the abstain threshold."
    )


class DedupSettings(Settings):
    exact: bool = Field(True, description="Drop examples whose normalised text is identical.")
    near_threshold: float | None = Field(
        0.85,
        gt=0,
        le=1,
        description="Drop near-duplicates above this Jaccard similarity (MinHash); null: off.",
    )


class SplitSettings(Settings):
    test: float = Field(0.1, ge=0, lt=1, description="Share of examples held out for evaluation.")
    val: float = Field(0.05, ge=0, lt=1, description="Share held out for validation loss during training.")
    by: Literal["source", "example"] = Field(
        "source", description="source: every example of one document lands in one split (no leakage)."
    )
    seed: int = Field(42, description="Seed of the split (deterministic).")

    @model_validator(mode="after")
    def _room_to_train(self) -> SplitSettings:
        if self.test + self.val >= 1:
            raise ValueError(f"test + val must leave room to train (got {self.test} + {self.val})")
        return self


class ChunkSettings(Settings):
    max_tokens: int = Field(512, gt=16, description="Tokens per document chunk (continued pretraining, RAG).")
    overlap: int = Field(64, ge=0, description="Tokens shared by consecutive chunks.")


class SynthesizeSettings(Settings):
    teacher: str = Field(description="OpenAI-compatible endpoint of a local teacher model (must be allowlisted).")
    model: str | None = Field(None, description="Model name at the endpoint (default: the first it lists).")
    per_chunk: int = Field(3, gt=0, description="Questions asked per document chunk.")
    api_key_env: str | None = Field(None, description="Environment variable holding the endpoint's API key.")
    distractors: int = Field(
        0, ge=0, description="RAFT: other chunks shown with the golden one in each question (0: question only)."
    )


class PrepareSettings(Settings):
    dataset: str | None = Field(None, description="Name of the dataset to build (default: the project name).")
    pii: Literal["redact", "pseudonymize", "off"] = Field(
        "redact",
        description="Personal data in the text: replace by type, by consistent placeholder, or keep.",
    )
    pii_ner_model: Literal["auto", "off"] | Path = Field(
        "auto",
        description="Person names: auto uses the installed spaCy pipeline of each text's language (en, fr; "
        "requirements/ner-models.txt), off finds none, or a local pipeline directory.",
    )
    dedup: DedupSettings = Field(default_factory=DedupSettings, description="Duplicate removal.")
    split: SplitSettings = Field(default_factory=SplitSettings, description="Train/val/test split.")
    chunk: ChunkSettings = Field(default_factory=ChunkSettings, description="Document chunking.")
    synthesize: SynthesizeSettings | None = Field(None, description="Synthetic Q&A from documents (optional).")
    min_chars: int = Field(2, ge=0, description="Drop examples whose answer/text is shorter than this.")


class JudgeSettings(Settings):
    endpoint: str = Field(description="OpenAI-compatible base URL of a local judge model (loopback or allow_hosts).")
    model: str | None = Field(None, description="Model name at the endpoint (default: the first it lists).")
    api_key_env: str | None = Field(None, description="Environment variable holding the endpoint's API key.")
    rubric: str | None = Field(None, description="Default rubric for cases without their own (1-5 scores).")
    max_tokens: int = Field(64, gt=0, description="Reply budget per judgement.")
    human_labels: Path | None = Field(
        None, description="A human-labelled set; the judge's agreement with it (Cohen's kappa) is reported."
    )


Baseline = Literal["base", "few_shot", "rag", "label_similarity", "knn", "tfidf"]


def _base_only() -> list[Baseline]:
    return ["base"]


class EvaluateSettings(Settings):
    baselines: list[Baseline] = Field(
        default_factory=_base_only,
        description="Candidates compared with the fine-tuned model: the base model asked plainly (base), with "
        "examples (few_shot) or retrieved passages (rag); for task classify also label_similarity (zero-shot by "
        "embedding the label names), knn (vote of the nearest train examples) and tfidf (TF-IDF + logistic "
        "regression), which need no generative base.",
    )
    metrics: list[str] | None = Field(None, description="Metric names (default: by task).")
    objectives: dict[str, float | Literal["beats_baselines"]] = Field(
        default_factory=dict,
        description="The gate for `register`, per metric: a threshold the fine-tuned model must reach (at most, "
        "for lower-is-better metrics), e.g. {accuracy: 0.9}; or `beats_baselines`: better than every baseline "
        "(paired bootstrap, 95%), e.g. {fact_recall: beats_baselines, rouge_l: 0.15}.",
    )
    max_new_tokens: int = Field(128, gt=0, description="Generation budget per case.")
    batch_size: int = Field(16, gt=0, description="Cases generated together.")
    limit: int | None = Field(None, gt=0, description="Evaluate only the first N test cases.")
    few_shot_k: int = Field(3, ge=0, description="Examples from the train split shown to the few_shot baseline.")
    rag_k: int = Field(3, gt=0, description="Chunks retrieved for the rag baseline.")
    knn_k: int = Field(5, gt=0, description="Train examples voting in the knn baseline (task classify).")
    rag_embedding_model: Path | None = Field(
        None,
        description="Local sentence-transformers model directory: dense retrieval for rag instead of BM25, and the "
        "embeddings of the label_similarity and knn baselines (default for those: the base model).",
    )
    judge: JudgeSettings | None = Field(None, description="An LLM judge: rubric scores and pairwise wins.")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, objective in value.items():
                is_number = isinstance(objective, int | float) and not isinstance(objective, bool)
                if not is_number and objective != BEATS_BASELINES:
                    raise ValueError(
                        f"{name}: must be a number (a threshold) or {BEATS_BASELINES!r} (got {objective!r})"
                    )
        return value


class IterateSettings(Settings):
    """`tailorlm iterate`: retrain on reviewers' feedback until the objectives are met."""

    rounds: int = Field(3, gt=0, description="Most rounds (feedback → dataset → train → evaluate → register).")
    method: Literal["dpo", "kto", "orpo", "sft"] = Field(
        "dpo",
        description="How a round retrains: dpo/kto/orpo from the current model on the feedback's preferences; "
        "sft: train.method from the base on the dataset with corrections and good answers added.",
    )
    metric: str | None = Field(
        None, description="What a round must improve over its parent (default: the task's main metric, rouge_l)."
    )
    require_gain: bool = Field(
        True,
        description="Stop without registering when a round's gain on `metric` is not significant (paired "
        "bootstrap, 95%); false: register every round that passes the gate.",
    )
    review_items: int = Field(
        20, ge=0, description="Failed test answers per round written to to_review.jsonl for reviewers to rate."
    )
    synthesize: int = Field(
        0,
        ge=0,
        description="Failed answers of the current model, from its largest failure clusters, that the teacher in "
        "prepare.synthesize writes new examples for each round (prepare.synthesize.per_chunk each; added to the "
        "train split; they train in sft and kto rounds); 0: none.",
    )


class ServeSettings(Settings):
    """`tailorlm serve`: each field is also a command-line option, which overrides the file."""

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, gt=0, lt=65536, description="Port to listen on.")
    auth: bool = Field(True, description="Require API keys; off is refused unless the host is loopback.")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Largest request body in bytes (413 above).")
    max_tokens_cap: int = Field(
        1024, gt=0, description="Most tokens one answer may have (larger max_tokens is lowered)."
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per minute per API key (429 above; 0: no limit)."
    )
    max_batch_size: int = Field(8, gt=0, description="Most requests generated together.")
    max_queue: int = Field(64, gt=0, description="Most requests waiting to be generated (503 above).")
    log_texts: bool = Field(False, description="Keep prompts and answers (PII redacted) in the request log.")
    log_retention_days: float | None = Field(
        30, ge=0, description="Delete request-log rows older than this many days (null keeps them)."
    )
    threads: int | None = Field(None, gt=0, description="CPU threads for torch (fix it on shared machines).")


class RetentionSettings(Settings):
    """How long `tailorlm gc` keeps what it can delete; null keeps it forever."""

    request_log_days: float | None = Field(
        None, ge=0, description="Request-log rows older than this many days (null: serve.log_retention_days)."
    )
    documents_days: float | None = Field(
        None, ge=0, description="Ingested documents (the raw text of source files) older than this many days."
    )
    intermediates_days: float | None = Field(
        None,
        ge=0,
        description="Checkpoints of complete runs, export staging leftovers and caches older than this many days.",
    )


class GovernanceSettings(Settings):
    """Who may release a model, how the audit log is protected, how long data is kept."""

    approval: Literal["required", "off"] = Field(
        "off",
        description="required: `serve` and `export` accept a model only after `tailorlm approve` by a user other "
        "than the one who trained or registered it (four-eyes).",
    )
    audit_key_file: Path | None = Field(
        None,
        description="Key file (outside the workspace) whose HMAC signs every audit event; "
        "$TAILORLM_AUDIT_KEY_FILE overrides it.",
    )
    purposes: list[str] = Field(
        default_factory=list,
        description="Purposes of the processing, for the GDPR Art. 30 record that `tailorlm docs build` writes.",
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="What `tailorlm gc` removes.")


class Project(Settings):
    project: str = Field(description="Project name; also the default dataset and model name.")
    base_model: Path = Field(description="Local directory of the base model (config.json, tokenizer, weights).")
    task: Task = Field("chat", description=f"What the model learns: one of {', '.join(TASKS)}.")
    system_prompt: str | None = Field(None, description="System prompt used in training, evaluation and serving.")
    sources: list[Source] = Field(default_factory=list, description="Company data to ingest and prepare.")
    prepare: PrepareSettings = Field(default_factory=PrepareSettings, description="Data preparation.")
    train: TrainSettings = Field(default_factory=TrainSettings, description="Fine-tuning.")
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings, description="Evaluation and the gate.")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="The OpenAI-compatible server.")
    iterate: IterateSettings = Field(
        default_factory=IterateSettings, description="Retraining on feedback (`tailorlm iterate`)."
    )
    allow_hosts: list[str] = Field(
        default_factory=list, description="Hosts that may be reached besides loopback (teacher, judge)."
    )
    governance: GovernanceSettings = Field(
        default_factory=GovernanceSettings, description="Approval, audit signing, retention."
    )
    root: Path = Field(Path("."), exclude=True, description="Folder of the project file (set when loaded).")

    @field_validator("project")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\@ "):
            raise ValueError(f"must be a name without '/', '\\', '@' or spaces (got {value!r})")
        return value

    @property
    def dataset_name(self) -> str:
        return self.prepare.dataset or self.project

    def resolve(self, path: Path) -> Path:
        """A path from the project file, made absolute against the project's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.root / path).resolve()


class ConfigError(UserError, ValueError):
    """A project file that can't be used; the message names the file and the field."""


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} problem(s)"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"  {field}: {item['msg']}{shown}")
    return "\n".join(lines)


def parse_project(data: Any, *, root: Path, source: str = "tailorlm.yaml") -> Project:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        project = Project.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
    project.root = root.resolve()
    return project


def load_project(path: Path | str) -> Project:
    """Read and validate a project file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"project file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_project(data, root=path.parent, source=str(path))


def dump_project(project: Project) -> str:
    """The project as YAML (relative paths kept as written)."""
    data = project.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def reference_markdown() -> str:
    """The project-file reference (docs/project-file.md), generated from the field descriptions."""
    from typing import get_args, get_origin

    lines = [
        "# The project file `tailorlm.yaml`",
        "",
        "Generated from `src/tailorlm/config.py` by `python -m tailorlm.config`; the descriptions are the",
        "code's own. Unknown keys are errors; `tailorlm validate FILE` names every bad field.",
        "",
    ]

    def section(model: type[BaseModel], prefix: str) -> None:
        nested: list[tuple[type[BaseModel], str]] = []
        lines.extend([f"## `{prefix or 'top level'}`", "", "| field | default | description |", "|---|---|---|"])
        for name, info in model.model_fields.items():
            if info.exclude:
                continue
            default = (
                "required"
                if info.is_required()
                else ("(see below)" if info.default_factory is not None else repr(info.default))
            )
            lines.append(f"| `{name}` | {default} | {info.description or ''} |")
            is_list = get_origin(info.annotation) is list
            for candidate in (info.annotation, *get_args(info.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    path = f"{prefix}.{name}" if prefix else name
                    nested.append((candidate, path + ("[]" if is_list else "")))
        lines.append("")
        for child, child_prefix in nested:
            section(child, child_prefix)

    section(Project, "")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
