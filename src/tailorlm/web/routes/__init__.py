"""The dashboard's pages, one module per page family; each exposes `router`, mounted by `web/app.py`."""

from tailorlm.web.routes import account, audit, data, evals, jobs, models, overview, playground, runs

ROUTERS = [r.router for r in (account, overview, data, runs, evals, playground, models, audit, jobs)]
