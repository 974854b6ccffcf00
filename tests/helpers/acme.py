"""A small workspace from the sample company's own files (examples/acme): the FAQ, the support mailbox and
two documents, prepared, trained a few steps on the tiny model and registered as `acme-support@v1`. For the
lineage, data-subject and compliance-document tests."""

from __future__ import annotations

import shutil
from pathlib import Path

ACME = Path(__file__).resolve().parents[2] / "src" / "tailorlm" / "examples" / "acme"
DOCS = ("refund-policy.md", "privacy-notice.md")


def copy_sample(root: Path, *, plant: dict[str, str] | None = None) -> Path:
    """Copy the sample files into `root`; `plant` replaces text in them (e.g. a person planted in the FAQ)."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for name in ("faq.csv", "support.mbox"):
        shutil.copy(ACME / name, root / name)
    for name in DOCS:
        shutil.copy(ACME / "docs" / name, root / "docs" / name)
    for file, (old, new) in ((f, pair) for f, pairs in (plant or {}).items() for pair in [pairs.split("=>", 1)]):
        text = (root / file).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {file}"
        (root / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


def acme_project(root: Path, base_model: Path, **extra):
    from tailorlm.config import parse_project

    data = {
        "project": "acme-support",
        "base_model": str(base_model),
        "system_prompt": "You are the Acme Care Team.",
        "sources": [
            {"path": "docs/", "kind": "documents"},
            {"path": "faq.csv", "kind": "faq", "question": "question", "answer": "answer"},
            {"path": "support.mbox", "kind": "email"},
        ],
        "prepare": {"pii": "redact", "split": {"test": 0.1, "val": 0.05, "by": "source"}},
        "train": {"method": "lora", "max_steps": 2, "batch_size": 4, "max_length": 128, "lora": {"r": 4, "alpha": 8}},
        **extra,
    }
    return parse_project(data, root=root)


def acme_workspace(root: Path, base_model: Path, *, plant: dict[str, str] | None = None, **extra):
    """(workspace, project, run id): the sample prepared, trained and registered as acme-support@v1."""
    import yaml

    from tailorlm.ingest import ingest
    from tailorlm.prepare import prepare
    from tailorlm.register import register
    from tailorlm.train import train
    from tailorlm.workspace import Workspace

    copy_sample(root / "company", plant=plant)
    project = acme_project(root / "company", base_model, **extra)
    ws = Workspace(root / "ws")
    data = project.model_dump(mode="json", exclude_none=True)
    data["sources"] = [{**s, "path": str(root / "company" / s["path"])} for s in data["sources"]]
    ws.project_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    prepare(ws, project, ingest=ingest)
    run = train(ws, project).run
    register(ws, run.id, name="acme-support", system_prompt=project.system_prompt)
    return ws, project, run.id
