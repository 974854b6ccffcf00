"""The ingest stage's body: walk the paths, pick each file's reader, store its Documents, register it.

`ingest()` reads top to bottom: check the reader options → list the files → per file, skip it if
unchanged, else read it and write `documents/<sha256>.jsonl` with its registry row → one audit event.
The readers register themselves with `readers.py` when `ingest/__init__.py` imports them.
"""

from __future__ import annotations

import inspect
import os
import stat
import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from tailorlm import offline
from tailorlm.documents import Document, FileResult, IngestReport, ReadError
from tailorlm.ingest.readers import READERS, Reader, reader_for
from tailorlm.ingest.source import reading
from tailorlm.progress import SILENT, Progress
from tailorlm.registry import Artifact, DocumentMeta
from tailorlm.workspace import Workspace, atomic_write_jsonl, remove_abandoned_staging, sha256_file, stable_hash

HEAD_BYTES = 8192  # what content sniffers see


def _version() -> str:
    try:
        return metadata.version("tailorlm")
    except metadata.PackageNotFoundError:
        return "0"


def _check_reader_options(reader_options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Validate {reader: {option: value}} against the readers' signatures, naming the user's key."""
    checked: dict[str, dict[str, Any]] = {}
    for name, values in (reader_options or {}).items():
        if name not in READERS:
            raise ValueError(f"reader_options: no reader named {name!r} (readers: {', '.join(sorted(READERS))})")
        if not isinstance(values, Mapping):
            raise ValueError(f"reader_options[{name!r}] must map option names to values (got {values!r})")
        function = READERS[name].function
        options = [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
        hints = typing.get_type_hints(function)
        for option, value in values.items():
            if option not in options:
                known = ", ".join(options) or "none"
                raise ValueError(f"reader_options[{name!r}]: no option {option!r} (options: {known})")
            hint = hints.get(option)
            if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
                allowed = " or ".join(repr(a) for a in typing.get_args(hint))
                raise ValueError(f"reader_options[{name!r}][{option!r}] must be {allowed} (got {value!r})")
        checked[name] = dict(values)
    return checked


LINK_REFUSED = (
    "a symbolic link to {target}: refused, a link can bring in files from outside what you named "
    "(pass --follow-links to read what it points to)"
)


def _files(
    paths: Sequence[Path | str], workspace: Path, problems: list[FileResult], *, follow_links: bool = False
) -> dict[Path, Path | None]:
    """Every file to read, as {file: the link it was reached through, if any}: explicit files as given,
    folders walked sorted, hidden entries and the workspace itself (a project folder often holds it)
    skipped. Symbolic links (to files or folders) are refused and reported, each by name, unless
    `follow_links`: then the real file is read and the link recorded."""

    def unreadable_folder(error: OSError) -> None:
        problems.append(FileResult(str(error.filename), "failed", None, 0, f"can't list folder: {error.strerror}"))

    found: dict[Path, Path | None] = {}
    walked: set[Path] = set()  # real folders already walked (a followed link may loop)

    def add(path: Path, via: Path | None) -> None:
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not follow_links:
                problems.append(FileResult(str(path), "failed", None, 0, LINK_REFUSED.format(target=target)))
            elif target.is_dir():
                walk(target, via or path)
            elif target.exists():
                found.setdefault(target, via or path)
            else:
                problems.append(
                    FileResult(str(path), "failed", None, 0, f"a symbolic link to {target}, which is missing")
                )
        elif path.is_dir():
            walk(path, via)
        elif path.exists():
            found.setdefault(path, via)
        else:
            problems.append(FileResult(str(path), "failed", None, 0, "no such file or folder"))

    def walk(folder: Path, via: Path | None) -> None:
        real = Path(os.path.realpath(folder))
        if real in walked:
            return
        walked.add(real)
        for root, folders, names in os.walk(folder, onerror=unreadable_folder):
            kept = sorted(f for f in folders if not f.startswith(".") and Path(root, f) != workspace)
            folders[:] = [f for f in kept if not Path(root, f).is_symlink()]
            for link in (Path(root, f) for f in kept if Path(root, f).is_symlink()):
                add(link, via)
            for name in sorted(n for n in names if not n.startswith(".")):
                add(Path(root) / name, via)

    for given in paths:
        add(Path(os.path.abspath(given)), None)
    return found


def _unchanged(workspace: Workspace, artifact_id: str, sha: str, key: str) -> Artifact | None:
    try:
        artifact = workspace.registry.get(artifact_id)
    except KeyError:
        return None
    complete = artifact.status == "complete" and artifact.hash == sha and artifact.key == key
    return artifact if complete and workspace.path_of(artifact).exists() else None


def _read(
    chosen: Reader, path: Path, sha: str, options: dict[str, Any]
) -> tuple[list[Document], list[str], str | None]:
    """(documents, skipped parts, error) — a reader's failure becomes the error, never an exception."""
    with reading(path, sha) as skipped:
        try:
            documents = list(chosen.function(path, **options))
        except ReadError as error:
            return [], list(skipped), str(error)
        except Exception as error:  # a reader bug must not stop the batch; the file is reported failed
            return (
                [],
                list(skipped),
                f"the {chosen.name} reader failed unexpectedly: {type(error).__name__}: {error}",
            )
    if not documents:
        reason = f"nothing readable: {skipped[0]}" if skipped else "no text found"
        return [], list(skipped), reason + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
    return documents, list(skipped), None


def _ingest_file(
    workspace: Workspace, path: Path, max_file_mb: float, options: dict[str, dict[str, Any]], link: Path | None = None
) -> FileResult:
    shown = str(link or path)

    def failed(error: str, sha: str | None = None, warnings: list[str] | None = None) -> FileResult:
        return FileResult(shown, "failed", sha, 0, error, warnings or [])

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return failed("not a regular file")
        if info.st_size == 0:
            return failed("empty file")
        if info.st_size > max_file_mb * 1024 * 1024:
            return failed(f"file is {info.st_size / 2**20:,.1f} MB, over the {max_file_mb:g} MB limit (max_file_mb)")
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
        sha = sha256_file(path)
    except OSError as error:
        return failed(f"can't read the file: {error.strerror or error}")
    try:
        chosen = reader_for(path, head)
    except ReadError as error:
        return failed(str(error), sha)
    reader_options = options.get(chosen.name, {})
    key = stable_hash({"reader": chosen.name, "options": reader_options, "tailorlm": _version()})
    artifact_id = f"doc-{sha[:16]}"
    if existing := _unchanged(workspace, artifact_id, sha, key):
        meta = existing.meta_as(DocumentMeta)
        return FileResult(shown, "unchanged", sha, meta.documents, None, list(meta.warnings))

    documents, warnings, reason = _read(chosen, path, sha, reader_options)
    if reason is not None:
        return failed(reason, sha, warnings)
    target = workspace.documents_file(sha)
    try:
        atomic_write_jsonl(target, (document.to_json() for document in documents))
    except OSError as write_error:
        return failed(f"can't write its documents to the workspace: {write_error}", sha, warnings)
    workspace.registry.add(
        Artifact(
            id=artifact_id,
            kind="document",
            name=path.name,
            hash=sha,
            path=workspace.relative(target),
            key=key,
            meta=DocumentMeta(
                source_path=str(path),
                link=str(link) if link else None,
                reader=chosen.name,
                documents=len(documents),
                bytes=info.st_size,
                warnings=warnings,
            ),
        )
    )
    return FileResult(shown, "partial" if warnings else "ingested", sha, len(documents), None, warnings)


def ingest(
    workspace: Workspace,
    paths: Sequence[Path | str],
    *,
    max_file_mb: float = 100.0,
    reader_options: dict[str, dict[str, Any]] | None = None,
    progress: Progress = SILENT,
    follow_links: bool = False,
) -> IngestReport:
    """Read files and folders into the workspace's documents; see the module docstring for the rules.

    Args:
        workspace: Where documents, registry rows and the audit event go.
        paths: Files and folders (walked recursively).
        max_file_mb: Larger files fail without being read.
        reader_options: Per-reader options, e.g. `{"pdf": {"engine": "docling"}, "email":
            {"company_domains": ["acme.com"]}, "csv": {"delimiter": ";"}, "jsonl": {"text_field": "text"}}`.
        progress: Counts the files read (a task named after the paths).
        follow_links: Read what symbolic links point to (the documents' provenance names the real file,
            the registry row the link too); by default every link is refused and reported.

    Raises:
        ValueError: `reader_options` names a reader, option or value that doesn't exist.
    """
    if max_file_mb <= 0:
        raise ValueError(f"max_file_mb must be > 0 (got {max_file_mb})")
    options = _check_reader_options(reader_options)
    offline.enforce()
    remove_abandoned_staging(workspace.documents_dir)  # a killed ingest's half-written documents file
    results: list[FileResult] = []
    files = _files(paths, workspace.root, results, follow_links=follow_links)
    label = f"ingest {paths[0]}" if len(paths) == 1 else f"ingest {len(paths)} paths"
    with progress.task(label, total=len(files), unit="files") as task:
        for path, link in files.items():
            results.append(_ingest_file(workspace, path, max_file_mb, options, link))
            task.advance(1)

    report = IngestReport(results)
    workspace.audit.append(
        "ingest",
        inputs=[result.path for result in results],
        outputs=[f"doc-{r.sha256[:16]}" for r in results if r.sha256 and r.status != "failed"],
        paths=[str(Path(os.path.abspath(p))) for p in paths],
        counts=dict(Counter(result.status for result in results)),
        documents=report.documents,
        failed=[{"path": r.path, "error": r.error} for r in results if r.status == "failed"],
        partial=[{"path": r.path, "warnings": r.warnings} for r in results if r.status == "partial"],
        reader_options=options,
        max_file_mb=max_file_mb,
        links={str(link): str(path) for path, link in files.items() if link} if follow_links else None,
    )
    return report


def read_file(path: Path | str, **options: Any) -> tuple[list[Document], list[str]]:
    """Read one file without a workspace (to preview it): (documents, parts skipped).

    `options` are the chosen reader's options (see each reader's keyword arguments).

    Raises:
        ReadError: no reader fits, or the reader can't read the file.
        ValueError: an option the chosen reader doesn't have, or a value it doesn't take.
    """
    absolute = Path(os.path.abspath(path))
    with absolute.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    chosen = reader_for(absolute, head)
    _check_reader_options({chosen.name: options})
    documents, skipped, error = _read(chosen, absolute, sha256_file(absolute), options)
    if error is not None:
        raise ReadError(error)
    return documents, skipped
