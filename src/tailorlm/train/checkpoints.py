"""A run's checkpoints, complete or absent, and what a resume and a stop need from them.

* The Trainer writes each checkpoint into a hidden `checkpoints/.saving-N/`; the files are fsynced and the
  folder renamed to `checkpoints/checkpoint-N` only when complete, so a kill mid-save leaves no folder
  that looks like a checkpoint. `last_checkpoint()` takes the newest complete one.
* SIGTERM or Ctrl-C (see `tailorlm.lifecycle`) is taken at the end of the current optimizer step: a
  checkpoint is saved there and training stops, to be finished by `train --resume`.
* A resumed run reports the whole run's `train_loss`, the same as an uninterrupted run: the loss is
  logged at every checkpoint, so the steps before the checkpoint are in its log history.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tailorlm.lifecycle import pause_point, stop_requested

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"  # written last by the Trainer


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    found = [
        path
        for path in checkpoints_dir(run_dir).glob(f"{PREFIX}*")
        if path.name[len(PREFIX) :].isdigit() and (path / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda path: int(path.name[len(PREFIX) :]))


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def resume_point(run_dir: Path) -> Path | None:
    """The checkpoint to resume from: the newest complete one before the run's last step. (One at the
    last step is passed over: the Trainer would take one step more from it. The steps after the one
    chosen are trained again, to the same weights: training is deterministic given the seed.)."""
    for checkpoint in reversed(complete_checkpoints(run_dir)):
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("global_step", 0) < state.get("max_steps", 0):
            return checkpoint
    return None


def remove_partial(run_dir: Path) -> list[Path]:
    """Remove what a killed save or rotation left: hidden `.saving-N`/`.deleting-N` folders and (from
    earlier versions) checkpoint folders without their trainer state. Returns what was removed."""
    folder = checkpoints_dir(run_dir)
    complete = set(complete_checkpoints(run_dir))
    partial = [p for p in folder.glob(".saving-*")] + [p for p in folder.glob(".deleting-*")]
    partial += [p for p in folder.glob(f"{PREFIX}*") if p not in complete]
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return partial


def save_checkpoints_atomically(trainer: Any) -> None:
    """Make `trainer` write each checkpoint complete-or-absent (module docstring). Wraps the one Trainer
    method that writes a checkpoint, on this instance, so it works with any Trainer subclass.

    Under torchrun (several processes, each may write its shards) checkpoints are written in place as the
    Trainer does; the trainer state it writes last marks one complete (`complete_checkpoints`)."""
    if trainer.args.world_size > 1:
        return
    write = trainer._save_checkpoint

    def save(model: Any, trial: Any) -> None:
        arguments = trainer.args
        folder = Path(arguments.output_dir)
        final = folder / f"{PREFIX}{trainer.state.global_step}"
        staging = folder / f".saving-{trainer.state.global_step}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        arguments.output_dir = str(staging)
        try:
            write(model, trial)
        finally:
            arguments.output_dir = str(folder)
        written = staging / final.name
        pause_point("train.checkpoint")  # the chaos tests kill a run here: written, not yet in place
        _fsync_tree(written)
        if final.exists():
            os.replace(final, folder / f".deleting-{final.name}")
            shutil.rmtree(folder / f".deleting-{final.name}")
        os.replace(written, final)
        _fsync(folder)
        shutil.rmtree(staging)
        _keep_newest(trainer.args.save_total_limit, folder.parent)

    trainer._save_checkpoint = save


def _keep_newest(limit: int | None, run_dir: Path) -> None:
    if not limit:
        return
    for old in complete_checkpoints(run_dir)[:-limit]:
        doomed = old.with_name(f".deleting-{old.name}")
        os.replace(old, doomed)  # out of sight first: a kill mid-delete leaves no half checkpoint
        shutil.rmtree(doomed)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        _fsync(path)
    _fsync(folder)


class StopAndWholeRunLoss(TrainerCallback):
    """Takes a stop asked by a signal at the end of the step (checkpoint, then stop), logs the loss at
    every checkpoint, and makes a resumed run's final `train_loss` the whole run's mean.

    Must come before the callbacks that record `train_loss` (it corrects the final logs in place)."""

    def __init__(self) -> None:
        self.resumed_at = 0
        self.loss_before = 0.0  # the summed per-step loss of the steps before the resume

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.resumed_at, self.loss_before, previous = state.global_step, 0.0, 0
        for row in state.log_history:
            if "loss" in row and row["step"] <= self.resumed_at:
                self.loss_before += float(row["loss"]) * (row["step"] - previous)
                previous = row["step"]

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        pause_point("train.step")  # the chaos tests stop a run here, between two steps
        if stop_requested():
            control.should_save = control.should_training_stop = True
        if control.should_save:  # the loss up to every checkpoint is in its log history
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if logs and "train_loss" in logs and self.resumed_at and state.global_step:
            after = float(logs["train_loss"]) * (state.global_step - self.resumed_at)
            logs["train_loss"] = (self.loss_before + after) / state.global_step
