"""`tailorlm eval` killed again and again (SIGKILL and SIGTERM, mid-registry-write, at seeded random
times): every evaluation it left shows as `interrupted`, the next one completes with the scores of an
uninterrupted evaluation, no staging folder is left, and the registry stays sound."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helpers.chaos import STOPPED, Chaos, assert_sound, random_kills
from helpers.data import make_chat_examples, register_dataset
from tailorlm.lifecycle import shown_status
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.chaos
KILLS = 20


def scores(root: Path) -> dict[str, float]:
    """The complete evaluation's scores, as {candidate/metric: value}."""
    workspace = Workspace(root)
    try:
        [evaluation] = workspace.registry.find("evaluation", status="complete")
        return {
            f"{name}/{metric}": v for name, values in evaluation.meta.scores.items() for metric, v in values.items()
        }
    finally:
        workspace.close()


def unfinished(root: Path) -> set[str]:
    """What the evaluations that did not complete show as."""
    workspace = Workspace(root)
    try:
        return {shown_status(e) for e in workspace.registry.find("evaluation") if e.status != "complete"}
    finally:
        workspace.close()


def test_killed_at_random_points_eval_ends_with_the_same_scores(tiny_model_dir, tmp_path):
    trained = tmp_path / "trained"
    workspace = Workspace(trained)
    project = {
        "project": "tiny",
        "base_model": str(tiny_model_dir),
        "train": {"method": "lora", "max_steps": 4, "batch_size": 4, "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
        "evaluate": {"baselines": ["base"], "max_new_tokens": 8, "batch_size": 2},
    }
    (trained / "tailorlm.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    register_dataset(workspace, make_chat_examples(40), val=4, test=6)
    workspace.close()
    chaos = Chaos(tmp_path / "logs")
    assert chaos.run(["train", "--workspace", str(trained)]).exit_code == 0

    reference = tmp_path / "reference"
    shutil.copytree(trained, reference)
    done = chaos.run(["eval", "--workspace", str(reference)])
    assert done.exit_code == 0, done.log
    expected = scores(reference)

    def fresh(number: int) -> Path:
        return Path(shutil.copytree(trained, tmp_path / f"ws-{number}"))

    root = fresh(0)
    points = [("registry.write", 2)]
    for kill in random_kills(40, points=points, longest=done.seconds):
        if chaos.kills >= KILLS:
            break
        attempt = chaos.run(["eval", "--workspace", str(root)], kill)
        if attempt.exit_code == 0:  # it finished before the kill: check, and start over
            assert scores(root) == pytest.approx(expected)
            assert_sound(root)
            root = fresh(len(chaos.attempts))
            continue
        assert attempt.exit_code in STOPPED, f"{kill}: {attempt.log}"
        assert "Traceback" not in attempt.log, f"{kill}: {attempt.log}"
        assert unfinished(root) <= {"interrupted"}, kill  # none looks alive, none failed
    final = chaos.run(["eval", "--workspace", str(root)])
    assert final.exit_code == 0, final.log
    assert scores(root) == pytest.approx(expected)
    assert_sound(root)
    print(f"eval: {chaos.kills} kill points survived")
    assert chaos.kills >= KILLS
