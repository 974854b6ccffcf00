"""The test tiers hold: `gpu` tests skip with the reason where CUDA is missing, and every marker `make check`
leaves out is registered."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_tests_skip_with_the_reason_without_cuda(pytester: pytest.Pytester) -> None:
    import torch

    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA GPU\naddopts = --strict-markers -p no:cacheprovider\n")
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(
        test_tiers="""
        import pytest

        @pytest.mark.gpu
        def test_on_the_gpu():
            import torch
            assert torch.cuda.is_available()

        def test_anywhere():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*needs a CUDA GPU: torch.cuda.is_available() is False*"])


def test_the_markers_make_check_leaves_out_are_registered() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    registered = {line.split(":")[0] for line in config["markers"]}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    check = re.search(r"^check:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert check, "Makefile has no check target"
    left_out = set(re.findall(r"not (\w+)", check.group(1)))
    assert left_out == {"integration", "real_model", "gpu", "chaos", "browser"} and left_out <= registered
