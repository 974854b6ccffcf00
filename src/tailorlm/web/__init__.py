"""The web dashboard (`tailorlm ui`): every stage of the journey as server-rendered pages, for teams without
data scientists. A shell over the library like the CLI: pages read the workspace and call the same
functions as the verbs; long operations run as background jobs. Templates and static assets ship in the
package (no CDN). See docs/ui.md."""

from tailorlm.web.server import DashboardError, ui

__all__ = ["DashboardError", "ui"]
