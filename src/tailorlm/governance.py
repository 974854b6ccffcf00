"""Who may release a model: the four-eyes approval gate and the notices a model carries.

With `governance.approval: required` in the project file, `serve`, `models deploy` and `export` accept a
registered model only once a user other than the one who trained or registered it has run `tailorlm
approve MODEL`; `tailorlm reject MODEL --reason ...` records a refusal. Decisions live in the registry
(`approvals`, migration m005) and in the audit log; the latest decision counts. The dashboard calls
`approve`, `reject` and `approval_state` directly.

A model also carries notices, such as `needs-retraining` after a data subject's erasure removed
examples it was trained on (see `tailorlm.subjects`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tailorlm.audit import current_user, os_user
from tailorlm.errors import UserError
from tailorlm.registry import Artifact, ModelMeta
from tailorlm.registry.store import now
from tailorlm.workspace import Workspace

State = Literal["approved", "rejected", "pending"]


class ApprovalError(UserError, PermissionError):
    """An approval that the rules refuse (the same user who trained or registered the model)."""


class NotApproved(UserError, PermissionError):
    """A model that may not be served or exported yet: approval is required and it has none."""


@dataclass
class Decision:
    """One approval or rejection, as recorded."""

    decision: Literal["approved", "rejected"]
    user: str
    os_user: str
    note: str | None
    decided_at: str
    registered_by: str | None = None
    trained_by: str | None = None


@dataclass
class ApprovalState:
    """Where a model stands: its latest decision (`pending` without one), who made it and the history."""

    model: str
    model_id: str
    state: State
    required: bool
    registered_by: str | None
    trained_by: str | None
    decision: Decision | None = None
    history: list[Decision] = field(default_factory=list)
    notices: list[dict[str, str]] = field(default_factory=list)

    @property
    def may_release(self) -> bool:
        """True when serve and export accept the model (approval not required, or approved)."""
        return not self.required or self.state == "approved"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "may_release": self.may_release}


# --- facts about a model -------------------------------------------------------------------------


def approval_required(workspace: Workspace) -> bool:
    """True when the workspace's project file says `governance.approval: required`."""
    return workspace.governance_setting("approval") == "required"


def _model(workspace: Workspace, model_ref: str) -> Artifact:
    return workspace.resolve("model", model_ref)


def _label(model: Artifact) -> str:
    return f"{model.name}@{model.version}"


def makers(workspace: Workspace, model: Artifact) -> tuple[str | None, str | None]:
    """(who registered the model, who trained its run): from the model's meta, else the audit log."""
    meta = model.meta_as(ModelMeta)
    registered_by, trained_by = meta.registered_by, None
    for event in workspace.audit.events():
        if event.get("action") == "register" and model.id in event.get("outputs", []) and registered_by is None:
            registered_by = event.get("user")
        if event.get("action") == "train.complete" and meta.run in event.get("outputs", []):
            trained_by = event.get("user")
    return registered_by, trained_by


def notices(workspace: Workspace, model_id: str) -> list[dict[str, str]]:
    """The notices on a model (e.g. needs-retraining), oldest first."""
    rows = workspace.registry.execute(
        "SELECT notice, reason, created_at FROM model_notices WHERE model_id = ? ORDER BY id", (model_id,)
    )
    return [dict(row) for row in rows]


def add_notice(workspace: Workspace, model_id: str, notice: str, reason: str) -> None:
    """Attach a notice to a model (recorded in the registry; the caller audits why)."""
    with workspace.registry.transaction() as connection:
        connection.execute(
            "INSERT INTO model_notices (model_id, notice, reason, created_at) VALUES (?, ?, ?, ?)",
            (model_id, notice, reason, now()),
        )


def approval_state(workspace: Workspace, model_ref: str) -> ApprovalState:
    """Where the model stands (`acme`, `acme@v2` or `model-acme-v2`); `NotFound` for an unknown one."""
    model = _model(workspace, model_ref)
    registered_by, trained_by = makers(workspace, model)
    rows = workspace.registry.execute(
        "SELECT decision, user, os_user, note, decided_at, registered_by, trained_by FROM approvals"
        " WHERE model_id = ? ORDER BY id",
        (model.id,),
    )
    history = [Decision(**dict(row)) for row in rows]
    latest = history[-1] if history else None
    return ApprovalState(
        model=_label(model),
        model_id=model.id,
        state=latest.decision if latest else "pending",
        required=approval_required(workspace),
        registered_by=registered_by,
        trained_by=trained_by,
        decision=latest,
        history=history,
        notices=notices(workspace, model.id),
    )


# --- decisions -----------------------------------------------------------------------------------


def _decide(
    workspace: Workspace, model_ref: str, decision: Literal["approved", "rejected"], user: str | None, note: str | None
) -> ApprovalState:
    model = _model(workspace, model_ref)
    registered_by, trained_by = makers(workspace, model)
    user = (user or current_user()).strip()
    if not user:
        raise ApprovalError("the deciding user can't be empty")
    if decision == "approved" and user in {registered_by, trained_by}:
        role = "registered" if user == registered_by else "trained"
        raise ApprovalError(
            f"{user} {role} {_label(model)} and can't also approve it (four-eyes: a second person must)",
            hint=f"ask a colleague to run `tailorlm approve {_label(model)}`",
        )
    with workspace.registry.transaction() as connection:
        connection.execute(
            "INSERT INTO approvals (model_id, decision, user, os_user, registered_by, trained_by, note, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (model.id, decision, user, os_user(), registered_by, trained_by, note, now()),
        )
    action = "approve" if decision == "approved" else "reject"
    workspace.audit.append(
        action,
        user=user,
        inputs=[model.id, model.hash],
        outputs=[model.id],
        model=_label(model),
        decided_by=user,
        registered_by=registered_by,
        trained_by=trained_by,
        note=note,
    )
    return approval_state(workspace, model.id)


def approve(workspace: Workspace, model_ref: str, user: str | None = None, note: str | None = None) -> ApprovalState:
    """Approve a registered model for serving and export; refused for whoever trained or registered it.

    Args:
        model_ref: `name`, `name@version` or the model id.
        user: Who approves (default `$TAILORLM_USER`, else the OS user; the dashboard passes its login).
        note: Why, or what was checked; recorded with the decision.
    """
    return _decide(workspace, model_ref, "approved", user, note)


def reject(workspace: Workspace, model_ref: str, user: str | None = None, reason: str = "") -> ApprovalState:
    """Reject a registered model (serving and export refuse it while approval is required); `reason` is required."""
    if not reason.strip():
        raise ApprovalError("a rejection needs a reason", hint="pass --reason '...'")
    return _decide(workspace, model_ref, "rejected", user, reason.strip())


def require_release(workspace: Workspace, reference: str, *, verb: str) -> None:
    """Raise `NotApproved` when approval is required and `reference` (a model or a run id) lacks it.

    Serve, deploy and export call this before loading anything; the message names the command to run.
    """
    if not approval_required(workspace):
        return
    if reference.startswith("run-"):
        raise NotApproved(
            f"{verb} refused for run {reference}: this project requires approval (governance.approval: required), "
            "and only registered models can be approved",
            hint=f"register it (`tailorlm register {reference} --name NAME`), then ask a second person to run "
            "`tailorlm approve NAME@VERSION`",
        )
    state = approval_state(workspace, reference)
    if state.state == "approved":
        return
    why = f"rejected by {state.decision.user}: {state.decision.note}" if state.decision else "not approved yet"
    raise NotApproved(
        f"{verb} refused for {state.model}: {why} (governance.approval: required)",
        hint=f"a user other than {state.registered_by or 'the one who registered it'} runs "
        f"`tailorlm approve {state.model} --workspace {workspace.root}`",
    )
