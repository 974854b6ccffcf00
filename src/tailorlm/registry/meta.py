"""What a registry row may say: the closed sets of artifact kinds and statuses, and one pydantic model per
kind for its `meta` column.

Writers build the kind's model (`RunMeta(method=..., ...)`), so a misspelt or mistyped field fails where it
is written, naming the field; readers get attributes (`run.meta.base_model`) instead of guessing keys. Rows
written by earlier versions still read: fields added later have defaults, and keys no longer known are
dropped on read.

To add a kind: add it to `Kind`, write its model here with `kind: ClassVar[Kind] = "..."`, and list it in
`META_MODELS`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

Kind = Literal["document", "dataset", "run", "evaluation", "model", "base"]
"""What an artifact is: ingested documents of one file, a dataset version, a training run, an evaluation,
a registered model, or an imported base model."""

Status = Literal["running", "complete", "failed", "interrupted"]
"""Where an artifact's making stands; only `complete` artifacts are resolved by name."""

KINDS: tuple[Kind, ...] = get_args(Kind)
STATUSES: tuple[Status, ...] = get_args(Status)


class MetaError(ValueError):
    """An artifact's meta does not match its kind's model (a bug in the writer, or a damaged row)."""


class Strict(BaseModel):
    """Refuses unknown keys when written; drops them when read back from the database (validation context
    `{"stored": True}`), so rows from other versions still read."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _known_keys_when_stored(cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get("stored"):
            data = {key: value for key, value in data.items() if key in cls.model_fields}
        return handler(data)


class Owner(Strict):
    """The process making a `running` artifact, so a reader can tell a live run from a dead one
    (see `tailorlm.lifecycle`)."""

    pid: int = Field(description="Its process id.")
    host: str = Field(description="The machine it runs on.")
    started: str = Field(description="When it started (UTC, ISO 8601).")
    heartbeat: str = Field(description="When it last said it was alive (UTC, ISO 8601).")
    pid_started: int | None = Field(
        None, description="The process's start time in clock ticks since boot (Linux), to tell a reused pid."
    )


class Meta(Strict):
    """Fields every kind shares."""

    kind: ClassVar[Kind]
    error: str | None = Field(None, description="Why making the artifact failed, when it did.")
    owner: Owner | None = Field(None, description="The process making it, while it is running.")

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, validated like a new one."""
        return self.model_validate({**self.model_dump(), **changes})


class DocumentMeta(Meta):
    """One ingested file: its documents are in the workspace's documents/ folder."""

    kind: ClassVar[Kind] = "document"
    source_path: str | None = Field(None, description="The file as the user named it (the real file, for a link).")
    link: str | None = Field(None, description="The symbolic link it was reached through (`ingest --follow-links`).")
    reader: str | None = Field(None, description="The reader that read it (e.g. pdf, email).")
    documents: int = Field(0, ge=0, description="How many documents it gave.")
    bytes: int | None = Field(None, ge=0, description="The file's size.")
    warnings: list[str] = Field(default_factory=list, description="What the reader could not read.")


class DatasetMeta(Meta):
    """A dataset version: train/val/test splits with a card."""

    kind: ClassVar[Kind] = "dataset"
    counts: dict[str, int] = Field(default_factory=dict, description="Examples per split.")
    skipped: dict[str, int] = Field(default_factory=dict, description="Inputs skipped, by reason.")
    task: str | None = Field(None, description="The project's task (chat, classify, extract, cpt).")
    format: str | None = Field(None, description="Example format (messages or text).")
    labels: list[str] = Field(default_factory=list, description="Classification labels seen.")
    chunks: int = Field(0, ge=0, description="Document chunks kept for retrieval baselines.")
    files: dict[str, str] = Field(default_factory=dict, description="sha256 of each split file.")
    sources: list[str] = Field(default_factory=list, description="The project's source paths.")


class RunMeta(Meta):
    """A training run: an adapter (or full weights) fine-tuned from a base model on a dataset."""

    kind: ClassVar[Kind] = "run"
    method: str = Field(description="Training method (full, lora, dora, qlora).")
    recipe: str = Field(
        "sft", description="What the run optimised: the recipe module (sft, ...; see train/recipes.py)."
    )
    base_model: str = Field(description="The base model's folder.")
    dataset: str = Field(description="The dataset artifact id it trained on.")
    plan: dict[str, Any] = Field(default_factory=dict, description="Steps, epochs and batch sizes.")
    data: dict[str, Any] = Field(default_factory=dict, description="Token counts of the train/val splits.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Final training metrics.")
    artifact: str = Field(
        "adapter", description="Folder in the run holding the weights: adapter (PEFT) or model (full)."
    )


class GateVerdict(Strict):
    """An evaluation gate's verdict on one candidate (see `tailorlm.evaluate.gate.GateResult`)."""

    passed: bool
    unmet: list[str] = Field(default_factory=list, description="One line per unmet objective.")
    candidate: str = ""
    checks: list[dict[str, Any]] = Field(default_factory=list, description="Every objective with its value.")


class EvaluationMeta(Meta):
    """An evaluation of candidates on test cases, with scores and the gate's verdict."""

    kind: ClassVar[Kind] = "evaluation"
    candidates: list[str] = Field(default_factory=list)
    task: str | None = None
    cases: int = Field(0, ge=0)
    runs: list[str] = Field(default_factory=list, description="Run ids evaluated.")
    dataset: str | None = Field(None, description="Dataset id whose test split gave the cases.")
    scores: dict[str, dict[str, float]] = Field(default_factory=dict, description="{candidate: {metric: value}}.")
    gate: GateVerdict | None = Field(None, description="The combined verdict over every run.")
    gates: dict[str, GateVerdict] | None = Field(None, description="Per run, when several were compared.")

    def gate_for(self, run_id: str) -> GateVerdict | None:
        """The verdict on one run: its own when several runs were compared, else the combined one."""
        return (self.gates or {}).get(run_id) or self.gate


class ModelMeta(Meta):
    """A registered model: a name and version pointing at a complete run's weights."""

    kind: ClassVar[Kind] = "model"
    name: str
    version: str
    run: str = Field(description="The run id it registers.")
    artifact: str = Field(description="The weights folder, relative to the workspace.")
    base_model: str
    method: str = ""
    dataset: str | None = None
    hash: str | None = None
    system_prompt: str | None = None
    evaluation: str | None = Field(None, description="The run's latest evaluation id, if any.")
    registered_by: str | None = Field(None, description="Who registered it ($TAILORLM_USER, else the OS user).")


class BaseOrigin(Strict):
    """Where an imported base model came from: a file, and the installed package that shipped it, if any."""

    file: str | None = Field(None, description="The GGUF file imported (or how its parts were joined).")
    package: str | None = Field(None, description="The installed package that shipped it.")
    version: str | None = Field(None, description="That package's version.")


class BaseMeta(Meta):
    """An imported base model: a GGUF file converted to a model directory (the row's `path`)."""

    kind: ClassVar[Kind] = "base"
    sha256: str = Field(description="sha256 of the source file.")
    origin: BaseOrigin | None = Field(None, description="Where it came from.")
    license: str | None = Field(None, description="Its licence, when the file or package says.")
    dtype: str = Field(description="Weight dtype of the model directory, e.g. bfloat16.")
    architecture: str = Field(description="transformers class, e.g. LlamaForCausalLM.")
    parameters: int = Field(ge=0, description="Parameter count.")
    model_type: str | None = None
    vocab_size: int | None = None
    chat_template: str | None = Field(None, description="Where the chat template comes from.")
    eos_token: str | None = None
    gguf_architecture: str | None = Field(None, description="The architecture the GGUF file names.")
    gguf_name: str | None = None
    quantization: list[str] = Field(default_factory=list, description="The GGUF file's tensor types.")
    source_stat: dict[str, int] | None = Field(
        None, description="Size and mtime of the source file when imported (to skip re-hashing it)."
    )


ArtifactMeta = DocumentMeta | DatasetMeta | RunMeta | EvaluationMeta | ModelMeta | BaseMeta

META_MODELS: dict[Kind, type[ArtifactMeta]] = {
    model.kind: model for model in (DocumentMeta, DatasetMeta, RunMeta, EvaluationMeta, ModelMeta, BaseMeta)
}

M = TypeVar("M", bound=Meta)


def check_kind(kind: str) -> Kind:
    """`kind` if it is a known kind, else `MetaError` listing them."""
    if kind not in KINDS:
        raise MetaError(f"unknown artifact kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


def check_status(status: str) -> Status:
    """`status` if it is a known status, else `MetaError` listing them."""
    if status not in STATUSES:
        raise MetaError(f"unknown artifact status {status!r}; known: {', '.join(STATUSES)}")
    return status


def parse_meta(
    kind: str, data: ArtifactMeta | dict[str, Any], *, where: str = "", stored: bool = False
) -> ArtifactMeta:
    """Validate `data` as `kind`'s meta; `MetaError` names the artifact and the field.

    Args:
        kind: The artifact's kind.
        data: A meta model (re-validated, so a `model_copy` or `model_construct` can't slip past) or a dict.
        where: The artifact id, for the message.
        stored: Read from the database: keys this version no longer knows are dropped, so old rows read.
    """
    model = META_MODELS[check_kind(kind)]
    if isinstance(data, Meta):
        if not isinstance(data, model):
            raise MetaError(f"{where or 'artifact'}: a {kind} takes {model.__name__}, not {type(data).__name__}")
        data = data.model_dump(warnings=False)  # a bad value is reported by the validation below
    try:
        return model.model_validate(data, context={"stored": stored})
    except ValidationError as error:
        problems = "; ".join(
            f"meta.{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise MetaError(f"{where or 'artifact'} ({kind}): {problems}") from None
