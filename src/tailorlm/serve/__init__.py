"""`tailorlm serve`: an OpenAI-compatible API for registered models, with API keys, limits, hot-loaded
adapters and a request log. See docs/serve.md.

    serve(workspace, models=["acme"])                       # blocks; the CLI's `tailorlm serve -m acme`
    deploy(workspace, "acme@v3", url=..., admin_key=...)    # `tailorlm models deploy acme@v3`

Heavy imports (torch, transformers, fastapi) happen inside the functions, so importing this package
is cheap for the CLI.
"""

from __future__ import annotations

from tailorlm.serve.server import DeployError, ServeError, deploy, serve, served_name, wait_until_healthy

__all__ = ["DeployError", "ServeError", "deploy", "serve", "served_name", "wait_until_healthy"]
