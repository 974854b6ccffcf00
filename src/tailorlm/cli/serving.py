"""Serving verbs: `serve` (its options are `config.ServeSettings`, read from the project's `serve:`
section and overridden by what is given), `models deploy` and the `keys` for the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tailorlm.cli import app, keys_app, models_app
from tailorlm.cli.common import (
    JsonOption,
    ProjectOption,
    WorkspaceOption,
    _as_dict,
    _choices,
    _given,
    _option,
    _project,
    _value,
    _with_options,
    _workspace,
    command,
)
from tailorlm.config import ServeSettings
from tailorlm.output import console, print_json, print_table


def serve(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Registered model(s) to serve: name, name@version, alias=name.")
    ],
    workspace: WorkspaceOption = None,
    project: ProjectOption = None,
    **settings: Any,
) -> None:
    """Serve models over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models).

    Settings come from the project file's `serve:` section; an option given here overrides it.

    \b
    Example:
      tailorlm serve --workspace ws --model acme-support --port 8080
    """
    from pydantic import ValidationError

    from tailorlm.config import ConfigError, format_validation_error
    from tailorlm.serve import serve as run_serve

    ws = _workspace(workspace)
    proj = _project(ws, project, required=False, base_model=False)  # the models know their base
    base = proj.serve if proj is not None else ServeSettings()
    try:
        chosen = ServeSettings.model_validate({**base.model_dump(), **_given(settings)})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "serve options"), hint="see `tailorlm serve --help`") from None
    options = chosen.model_dump()
    run_serve(ws, models=model, no_auth=not options.pop("auth"), **options)


app.command("serve")(
    _with_options(
        command(serve),
        [_option(n, f.annotation, f.description or "", f.default) for n, f in ServeSettings.model_fields.items()],
    )
)


@models_app.command("deploy")
@command
def models_deploy(
    name: Annotated[str, typer.Argument(help="Registered model to load into a running server.")],
    url: Annotated[str, typer.Option(help="Base URL of the running `tailorlm serve`.")] = "http://127.0.0.1:8000",
    admin_key: Annotated[str | None, typer.Option(envvar="TAILORLM_ADMIN_KEY", help="An admin-scope API key.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Hot-load a registered model's adapter into a running server (no restart).

    \b
    Example:
      tailorlm models deploy acme-support@v2 --workspace ws --url http://127.0.0.1:8000
    """
    from tailorlm.serve import deploy

    deploy(_workspace(workspace), name, url=url, admin_key=admin_key)
    console.print(f"Deployed {name} to {url}")


@keys_app.command("create")
@command
def keys_create(
    scope: Annotated[
        _choices("scope", ("chat", "admin")),  # type: ignore[valid-type]
        typer.Option(help="chat (completions) or admin (also manage adapters)."),
    ] = "chat",
    model: Annotated[
        list[str] | None, typer.Option("--models", help="Limit the key to these models (registered names or base).")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    allow_alias: Annotated[
        bool, typer.Option(help="Accept --models names that are not registered (aliases given at serve time).")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Create an API key (stored hashed; shown once).

    \b
    Example:
      tailorlm keys create --scope chat --name helpdesk --models acme-support --workspace ws
    """
    from tailorlm.serve.auth import create_key

    key_id, secret = create_key(
        _workspace(workspace), scope=_value(scope), models=model, name=name, allow_alias=allow_alias
    )
    console.print(f"key id {key_id} (scope {_value(scope)}). The secret is shown only now:\n{secret}", soft_wrap=True)


@keys_app.command("list")
@command
def keys_list(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List API keys (never the secrets).

    \b
    Example:
      tailorlm keys list --workspace ws --json
    """
    from tailorlm.serve.auth import list_keys

    keys = list_keys(_workspace(workspace))
    if as_json:
        print_json([_as_dict(key) for key in keys])
        return
    rows = [
        [key.id, key.name, key.scope, ", ".join(key.models) if key.models else "all", key.created_at, key.revoked_at]
        for key in keys
    ]
    print_table(["id", "name", "scope", "models", "created", "revoked"], rows)


@keys_app.command("revoke")
@command
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], workspace: WorkspaceOption = None) -> None:
    """Revoke an API key.

    \b
    Example:
      tailorlm keys revoke k-1a2b3c --workspace ws
    """
    from tailorlm.serve.auth import revoke_key

    revoke_key(_workspace(workspace), key_id)
    console.print(f"revoked {key_id}")
