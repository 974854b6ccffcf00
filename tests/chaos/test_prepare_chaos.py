"""`tailorlm prepare` killed again and again (SIGKILL and SIGTERM, mid-registry-write, with a teacher's
reply in hand, at seeded random times): the next run completes with the same dataset files as an
uninterrupted run, leaves no staging folder or temp file, and the registry stays sound. Synthesis runs
against a local teacher over real HTTP whose replies are scripted (a random tiny model can't write
question/answer JSON); the replies saved before a kill are not asked for again."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from helpers.chaos import STOPPED, Chaos, assert_sound, random_kills
from helpers.serve import ServerThread, scripted_teacher
from tailorlm.registry import DatasetMeta
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.chaos
KILLS = 20

DOCS = {
    "refunds": [
        "Refunds go back to the original payment method within 5 business days of the return arriving.",
        "Gift cards cannot be refunded.",
    ],
    "install": [
        "The Thermo T5 replaces most 24 V thermostats.",
        "Turn off the power at the breaker first.",
    ],
    "care": [
        "The Care+ plan costs 1,500 EUR per year for up to 40 devices.",
        "Care+ is billed every January.",
    ],
}


def company(folder: Path) -> Path:
    """Three FAQ files and three policy documents."""
    (folder / "faq").mkdir(parents=True)
    for number in range(3):
        rows = [f"Question {number}-{i} about Acme product {i}?,Answer {number}-{i}: see page {i}." for i in range(12)]
        (folder / "faq" / f"faq-{number}.csv").write_text("question,answer\n" + "\n".join(rows) + "\n")
    (folder / "docs").mkdir()
    for name, sentences in DOCS.items():
        (folder / "docs" / f"{name}.md").write_text(f"# {name.title()}\n\n" + " ".join(sentences) + "\n")
    return folder


def answer(prompt: str) -> str:
    """Grounded pairs for the document the prompt quotes."""
    for name, sentences in DOCS.items():
        if sentences[0] in prompt:
            pairs = [
                {"question": f"What does the {name} policy say, point {i}?", "answer": s}
                for i, s in enumerate(sentences)
            ]
            return json.dumps(pairs)
    return "nothing to ask"


def make_workspace(root: Path, folder: Path, model_dir: Path, teacher: str | None) -> Path:
    sources = [{"path": str(folder / "faq"), "kind": "faq"}]
    prepare: dict = {"split": {"test": 0.1, "val": 0.1}}
    if teacher:
        sources.append({"path": str(folder / "docs"), "kind": "documents"})
        prepare["synthesize"] = {"teacher": teacher, "per_chunk": 2}
    project = {"project": "acme", "base_model": str(model_dir), "sources": sources, "prepare": prepare}
    Workspace(root).close()
    (root / "tailorlm.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    return root


def dataset_files(root: Path) -> dict[str, str]:
    workspace = Workspace(root)
    try:
        [dataset] = workspace.registry.find("dataset", status="complete")
        return dataset.meta_as(DatasetMeta).files
    finally:
        workspace.close()


def events(root: Path) -> list[str]:
    workspace = Workspace(root)
    try:
        return [event["action"] for event in workspace.audit.events()]
    finally:
        workspace.close()


def chaos_chain(name: str, seed: int, folder: Path, model_dir: Path, tmp_path: Path, teacher: str | None) -> int:
    """An uninterrupted prepare, then one killed at 22 points and run once more; the same dataset."""
    chaos = Chaos(tmp_path / f"{name}-logs")
    reference = make_workspace(tmp_path / f"{name}-reference", folder, model_dir, teacher)
    done = chaos.run(["prepare", "--workspace", str(reference)])
    assert done.exit_code == 0, done.log
    longest = done.seconds
    expected = dataset_files(reference)

    root = make_workspace(tmp_path / name, folder, model_dir, teacher)
    roots = [root]
    points = [("registry.write", 4)] + ([("synthesize.reply", 3)] if teacher else [])
    for kill in random_kills(seed, points=points, longest=longest):
        if chaos.kills >= KILLS:
            break
        attempt = chaos.run(["prepare", "--workspace", str(root)], kill)
        if attempt.exit_code == 0:  # it finished before the kill: check, and start over
            assert dataset_files(root) == expected
            assert_sound(root)
            root = make_workspace(tmp_path / f"{name}-{len(chaos.attempts)}", folder, model_dir, teacher)
            roots.append(root)
            continue
        assert attempt.exit_code in STOPPED, f"{kill}: {attempt.log}"
        assert "Traceback" not in attempt.log, f"{kill}: {attempt.log}"
    final = chaos.run(["prepare", "--workspace", str(root)])
    assert final.exit_code == 0, final.log
    assert dataset_files(root) == expected
    assert_sound(root)
    recorded = sum(events(r).count("prepare.interrupted") for r in roots)
    # every SIGTERM that stopped a prepare under way is in the audit log (one that landed while the CLI
    # was still opening the workspace stopped nothing that had begun: exit 143, no event)
    terms = [a for a in chaos.attempts if a.exit_code == 128 + signal.SIGTERM and "ingesting " in a.log]
    assert recorded >= len(terms) > 0
    kills = chaos.kills
    print(f"{name}: {kills} kill points survived")
    return kills


def test_killed_at_random_points_prepare_ends_with_the_same_dataset(tiny_model_dir, tmp_path):
    assert chaos_chain("prepare", 20, company(tmp_path / "company"), tiny_model_dir, tmp_path, None) >= KILLS


def test_killed_at_random_points_synthesis_ends_with_the_same_dataset(tiny_model_dir, tmp_path):
    with ServerThread(scripted_teacher(answer)) as server:
        kills = chaos_chain(
            "synthesis", 30, company(tmp_path / "company"), tiny_model_dir, tmp_path, f"{server.url}/v1"
        )
    assert kills >= KILLS
