"""The `train` stage: a dataset and a base model in, a run folder with an adapter (or full weights) out.

    result = train(workspace, project)                    # tailorlm train
    result = train(workspace, project, resume="run-...")   # continue an interrupted run

The stage reads top to bottom in `runner.py`; `data.py` tokenises a split, `plan.py` picks device
defaults, `sft.py` holds the recipe (setup → train → save).
"""

from __future__ import annotations

from tailorlm.train.runner import TrainError, TrainResult, train

__all__ = ["TrainError", "TrainResult", "train"]
