"""Approve or reject a model version from the dashboard, four-eyes: the approver must not be who registered
it. Uses the governance module (`tailorlm approve`/`reject`) where it is installed; until then the
decisions are audit events (`model.approve`, `model.reject`) and the state is read back from the log,
the same events that module records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailorlm.errors import UserError
from tailorlm.registry import Artifact
from tailorlm.workspace import Workspace


class ApprovalError(UserError, PermissionError):
    """An approval the rules refuse (the registrant approving their own model)."""


@dataclass
class ApprovalState:
    state: str  # pending | approved | rejected
    registered_by: str | None
    decisions: list[dict[str, Any]] = field(default_factory=list)


def _governance() -> Any | None:
    try:
        import tailorlm.governance as governance  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return governance


def approval_state(workspace: Workspace, model: Artifact) -> ApprovalState:
    events = workspace.audit.events()
    registered = next((e.get("user") for e in events if e["action"] == "register" and model.id in e["outputs"]), None)
    decisions = [e for e in events if e["action"] in ("model.approve", "model.reject") and model.id in e["inputs"]]
    state = "pending"
    if decisions:
        state = "approved" if decisions[-1]["action"] == "model.approve" else "rejected"
    return ApprovalState(state, registered, decisions)


def decide(workspace: Workspace, model: Artifact, *, user: str, approve: bool, note: str) -> ApprovalState:
    """Record `user`'s decision; an approval by the user who registered the model is refused."""
    current = approval_state(workspace, model)
    if approve and current.registered_by == user:
        raise ApprovalError(
            f"{user} registered {model.name}@{model.version}: four-eyes needs another approver",
            hint="ask a colleague with the approver role",
        )
    if not approve and not note.strip():
        raise ApprovalError("a rejection needs a reason")
    action = "model.approve" if approve else "model.reject"
    workspace.audit.append(action, inputs=[model.id], user=user, note=note.strip(), via="dashboard")
    return approval_state(workspace, model)
