"""The API's routes, one module per family: `models` (health and model listing), `chat` (chat
completions), `completions` (text completions), `feedback` (ratings and corrections of answers),
`admin` (adapters) and `classify` (classification heads). `common` holds what they share:
the server's state, the caller dependency (API key, scope, rate limit), sampling limits; `answering`
carries a generation from the engine to a response, whole or streamed."""

from tailorlm.serve.routes import admin, chat, classify, completions, feedback, models

ROUTERS = [models.router, chat.router, completions.router, feedback.router, admin.router, classify.router]

__all__ = ["ROUTERS"]
