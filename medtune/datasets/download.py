"""Where corpora live and how their files are fetched.

* Data dir: an explicit ``data_dir`` argument, else ``$MEDTUNE_DATA_DIR``, else (as the download
  target) ``~/.cache/medtune/data``. A corpus lives in ``<data dir>/<spec.folder>/``.
* Download: each missing file a split needs is fetched with ``urllib`` from its official URL (a raw
  GitHub URL at a fixed commit) or, when ``$MEDTUNE_DATA_MIRROR`` is set, from
  ``$MEDTUNE_DATA_MIRROR/<folder>/<path>`` (any URL scheme urllib opens, ``file://`` included). The
  bytes are streamed into a temporary file beside the target, checked against the registry's size
  and SHA-256, and renamed into place only when both match: a mismatch leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from medtune.datasets.registry import DataFile, DatasetSpec
from medtune.errors import DataFormatError, DatasetNotFoundError
from medtune.fileutils import atomic_write

ENV_DATA_DIR = "MEDTUNE_DATA_DIR"
ENV_MIRROR = "MEDTUNE_DATA_MIRROR"
DEFAULT_DATA_DIR = Path("~/.cache/medtune/data")
_TIMEOUT_S = 60
_CHUNK = 1 << 16


class ChecksumMismatchError(DataFormatError):
    """A downloaded file does not have the size or SHA-256 the registry lists."""


def default_data_dir() -> Path:
    """The download target used when neither ``data_dir`` nor ``$MEDTUNE_DATA_DIR`` is given."""
    return DEFAULT_DATA_DIR.expanduser()


def data_dir(path: str | Path | None = None, *, fallback: bool = False) -> Path:
    """Resolve the data dir: ``path``, else ``$MEDTUNE_DATA_DIR``, else (``fallback=True``) the cache.

    Without ``path``, the variable and ``fallback``, raise ``DatasetNotFoundError`` naming the variable.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    if fallback:
        return default_data_dir()
    raise DatasetNotFoundError(
        f"{ENV_DATA_DIR} is not set, so medtune does not know where the corpora are.",
        fix=f"export {ENV_DATA_DIR}=/path/to/data (the folder that holds one folder per corpus), or "
            f"pass data_dir=...",
    )


def file_url(spec: DatasetSpec, file: DataFile) -> str:
    """Where ``file`` is fetched from: the mirror when ``$MEDTUNE_DATA_MIRROR`` is set, else its URL."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror:
        return file.url
    if not mirror.endswith("/"):
        mirror += "/"
    return mirror + urllib.parse.quote(f"{spec.folder}/{file.path}")


def target_path(root: Path, spec: DatasetSpec, file: DataFile) -> Path:
    return root / spec.folder / file.path


def missing_paths(root: Path, spec: DatasetSpec, split: str) -> list[Path]:
    """The paths a split needs that are absent under ``root`` (files, then manual folders)."""
    missing = [target_path(root, spec, f) for f in spec.files_for(split)
               if not target_path(root, spec, f).is_file()]
    for rel in spec.manual_paths:
        path = root / spec.folder / rel.rstrip("/")
        present = path.is_dir() if rel.endswith("/") else path.is_file()
        if not present:
            missing.append(path)
    return missing


def fetch_file(url: str, dest: Path, *, sha256: str, size: int, timeout: float = _TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``size`` and ``sha256``.

    Network errors propagate (``urllib.error.URLError``/``OSError``); a size or checksum mismatch
    raises ``ChecksumMismatchError`` naming the file and both checksums, and leaves no file behind.
    """
    digest = hashlib.sha256()
    got = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s)/file only)
        with atomic_write(dest, "wb") as out:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                got += len(chunk)
                if got > size:  # never stream an unbounded answer to disk
                    raise ChecksumMismatchError(
                        f"size mismatch for {dest.name}: expected {size} bytes (sha256 {sha256}), got "
                        f"more; nothing was written",
                        path=dest, fix=f"check the source {url} or the mirror ({ENV_MIRROR})",
                    )
                digest.update(chunk)
                out.write(chunk)
            actual = digest.hexdigest()
            if got != size or actual != sha256:
                raise ChecksumMismatchError(
                    f"checksum mismatch for {dest.name}: expected sha256 {sha256} ({size} bytes), got "
                    f"sha256 {actual} ({got} bytes); nothing was written",
                    path=dest, fix=f"check the source {url} or the mirror ({ENV_MIRROR})",
                )
    return dest


def _where_message(root: Path, spec: DatasetSpec, split: str, missing: list[Path]) -> str:
    folders = {root / spec.folder / rel.rstrip("/") for rel in spec.manual_paths if rel.endswith("/")}
    listed = "; ".join(f"{p}/" if p in folders else str(p) for p in missing)
    sources = {str(target_path(root, spec, f)): f.url for f in spec.files_for(split)}
    lines = [f"dataset '{spec.name}' ({split}) is not in {root}: missing {listed}."]
    wanted = [f"{p} <- {sources[str(p)]}" for p in missing if str(p) in sources]
    if wanted:
        lines.append("Put each file at its path: " + "; ".join(wanted) + ".")
    if spec.download_unsupported:
        lines.append(spec.download_unsupported + f" into {root / spec.folder}/.")
    lines.append(f"Set {ENV_DATA_DIR} to the folder that holds '{spec.folder}/' "
                 f"(or pass data_dir=...).")
    return " ".join(lines)


def ensure_files(spec: DatasetSpec, split: str, root: Path, *, download: bool = True) -> None:
    """Make sure every file ``split`` needs is under ``root``, downloading the missing ones if allowed.

    Raises ``DatasetNotFoundError`` saying which files to put where when they are absent and cannot be
    downloaded, and ``ChecksumMismatchError`` when a download does not match the registry.
    """
    missing = missing_paths(root, spec, split)
    if not missing:
        return
    failures: list[str] = []
    if download and spec.downloadable:
        for file in spec.files_for(split):
            dest = target_path(root, spec, file)
            if dest.is_file():
                continue
            url = file_url(spec, file)
            try:
                fetch_file(url, dest, sha256=file.sha256, size=file.size)
            except ChecksumMismatchError:
                raise
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = (err.reason if isinstance(err, urllib.error.URLError)
                          else f"{err.__class__.__name__}: {err}")
                failures.append(f"{url}: {reason}")
        missing = missing_paths(root, spec, split)
        if not missing:
            return
    message = _where_message(root, spec, split, missing)
    if failures:
        message += " Download failed: " + "; ".join(failures) + "."
    elif download and not spec.downloadable:
        message += " Automatic download is not supported for this corpus."
    elif not download:
        message += " (download=False)"
    raise DatasetNotFoundError(message, fix=f"put the files at the paths above, or set {ENV_DATA_DIR}")
