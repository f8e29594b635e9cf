"""Where the Fashion-MNIST files come from, and whether they are the official ones.

Finding the four IDX files (an explicit folder, the project cache, Debian's package, Keras'
cache), checking them and fetching a copy when none is found. Turning them into a dataset is
``dataset``'s job.

The files are checked by the SHA-256 of their *decompressed* content, not of the ``.gz``
wrapper: Debian's package recompresses the official files (different gzip bytes, same images),
and a content hash accepts every faithful copy while still catching any truncation or
corruption. The hash is computed during the one decompression that loading needs anyway.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import struct
import tempfile
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fmnist_search.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


@dataclass(frozen=True)
class IdxFile:
    name: str
    content_sha256: str
    shape: tuple[int, ...]


FILES: dict[str, IdxFile] = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        (60000, 28, 28),
    ),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        (60000,),
    ),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        (10000, 28, 28),
    ),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        (10000,),
    ),
}

MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FIX_HINT = (
    "Delete it and run `fmnist-search data --fetch` to get a fresh copy, install Debian's "
    "package (`apt-get install dataset-fashion-mnist`), or point --data-dir at a good copy."
)


# --------------------------------------------------------------------------- locating


def project_cache() -> Path:
    return Path(os.environ.get("FMNIST_CACHE", "data"))


def keras_cache() -> Path:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / "fashion-mnist"


def search_path(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where to look, in order: explicit, project cache, Debian's package, Keras' cache."""
    explicit = data_dir or os.environ.get("FMNIST_DATA")
    places: list[tuple[str, Path]] = []
    if explicit:
        from fmnist_search.preflight import check_path

        label = "--data-dir" if data_dir else "FMNIST_DATA"
        check_path(explicit, label)
        places.append((label, Path(explicit)))
    places += [
        ("project cache", project_cache()),
        ("Debian package dataset-fashion-mnist", DEBIAN_DIR),
        ("Keras cache", keras_cache()),
    ]
    return places


def has_all_files(directory: Path) -> bool:
    return all((directory / f.name).is_file() for f in FILES.values())


@dataclass(frozen=True)
class Source:
    label: str
    directory: Path


class DataNotFound(UserError):
    """No copy of the four files in any place searched (and none was named): the case in
    which training commands download them."""

    def __init__(self, places: list[tuple[str, Path]]) -> None:
        self.places = places
        super().__init__(not_found_message(places))


class DownloadError(UserError):
    """Every mirror failed for one file; ``reason`` says why in a few words."""

    def __init__(self, name: str, failures: list[tuple[str, str]]) -> None:
        hosts: dict[str, list[str]] = {}  # offline, every mirror fails for the same reason
        for url, why in failures:
            hosts.setdefault(why, []).append(urllib.parse.urlsplit(url).netloc or url)
        self.reason = "; ".join(f"{why} ({', '.join(where)})" for why, where in hosts.items())
        super().__init__(
            f"Could not download {name}: {self.reason}. Without internet, install Debian's "
            "package (`apt-get install dataset-fashion-mnist`) or copy the four files into "
            f"{project_cache()}/ or a folder given with --data-dir.")


def not_found_message(places: list[tuple[str, Path]], download_failure: str | None = None) -> str:
    looked = "; ".join(f"{label}: {d}" for label, d in places)
    if download_failure is None:
        return (
            f"Fashion-MNIST was not found. Looked in {looked}. Remedies: run `fmnist-search "
            f"data --fetch` (downloads the official files into {project_cache()}/), install "
            "Debian's package (`apt-get install dataset-fashion-mnist`), or pass --data-dir "
            "DIR (or set FMNIST_DATA) to a folder holding the four IDX .gz files."
        )
    return (
        f"Fashion-MNIST was not found, and downloading it failed ({download_failure}). Looked "
        f"in {looked}. Remedies: rerun when online (the files are downloaded into "
        f"{project_cache()}/ by themselves), install Debian's package (`apt-get install "
        "dataset-fashion-mnist`), or pass --data-dir DIR (or set FMNIST_DATA) to a folder "
        f"holding the four IDX .gz files ({', '.join(f.name for f in FILES.values())})."
    )


def locate(data_dir: str | Path | None = None) -> Source:
    """The first place holding all four files; an explicit directory must hold them."""
    places = search_path(data_dir)
    label, first = places[0]
    if label in ("--data-dir", "FMNIST_DATA") and not has_all_files(first):
        missing = [f.name for f in FILES.values() if not (first / f.name).is_file()]
        raise UserError(
            f"{label} {first} does not hold the Fashion-MNIST files: missing "
            f"{', '.join(missing)}. It must contain the four IDX .gz files "
            f"({', '.join(f.name for f in FILES.values())})."
        )
    for label, directory in places:
        if has_all_files(directory):
            return Source(label, directory)
    raise DataNotFound(places)


# --------------------------------------------------------------------------- verifying


def read_idx(path: Path, expected: IdxFile | None = None) -> np.ndarray:
    """Parse one gzipped IDX file of unsigned bytes, verifying its content hash."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"{path} is not a readable gzip file ({exc}); it is probably truncated or "
            f"corrupted. {FIX_HINT}"
        ) from exc
    if expected is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected.content_sha256:
            raise UserError(
                f"{path} failed its checksum: the SHA-256 of its decompressed content is "
                f"{digest}, expected {expected.content_sha256}. The file is corrupted or is "
                f"not the official {expected.name}. {FIX_HINT}"
            )
    array = parse_idx(raw, path)
    if expected is not None and array.shape != expected.shape:
        raise UserError(f"{path} holds shape {array.shape}, expected {expected.shape}. {FIX_HINT}")
    return array


def parse_idx(raw: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path} is not an IDX file: its first bytes are not an IDX magic number.")
    if raw[2] != 0x08:
        raise UserError(f"{path} holds IDX type 0x{raw[2]:02x}; only unsigned bytes (0x08) are used.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{path} has a damaged IDX header ({ndim} dimensions).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected_bytes = int(np.prod(shape))
    if len(raw) - header != expected_bytes:
        raise UserError(
            f"{path} declares shape {tuple(shape)} ({expected_bytes} bytes of data) but holds "
            f"{len(raw) - header}: it is truncated or padded."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


# --------------------------------------------------------------------------- fetching


def fetch(cache: Path | None = None, data_dir: str | Path | None = None,
          mirrors: Sequence[str] | None = None, console: Console | None = None) -> Path:
    """Fill the project cache: keep the files already there that verify, copy a verified
    local copy, else download and verify (with a progress bar on ``console``)."""
    from fmnist_search.preflight import ensure_writable_dir

    cache = cache or project_cache()
    ensure_writable_dir(cache, "The data cache", "Set FMNIST_CACHE to a writable folder, or "
                        "pass --data-dir DIR to a folder holding the four IDX .gz files.")
    cache.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in FILES.values() if not _verifies(cache / spec.name, spec)]
    if not missing:
        return cache
    local = [d for label, d in search_path(data_dir) if d != cache and has_all_files(d)]
    if local:
        for spec in missing:
            read_idx(local[0] / spec.name, spec)
            shutil.copyfile(local[0] / spec.name, cache / spec.name)
        return cache
    progress = _download_progress(console)
    try:
        for spec in missing:
            download(spec, cache / spec.name, MIRRORS if mirrors is None else mirrors, progress)
    finally:
        if progress.live.is_started:
            progress.stop()
    return cache


def _verifies(path: Path, spec: IdxFile) -> bool:
    if not path.is_file():
        return False
    try:
        read_idx(path, spec)
    except UserError:
        return False  # a damaged cached file is replaced, not reported
    return True


def _download_progress(console: Console | None) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(),
                    console=console, disable=console is None)


def download(spec: IdxFile, target: Path, mirrors: Sequence[str],
             progress: Progress | None = None) -> None:
    """Download into a temporary file, verify, then rename: no half file is ever cached."""
    failures: list[tuple[str, str]] = []
    for base in mirrors:
        url = base + spec.name
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.name}.", suffix=".part")
        os.close(fd)
        tmp_path = Path(name)
        try:
            _copy_url(url, tmp_path, progress, spec.name)
            read_idx(tmp_path, spec)
        except (OSError, http.client.HTTPException) as exc:
            failures.append((url, str(getattr(exc, "reason", None) or exc)))
        except UserError:
            failures.append((url, "the download failed verification (damaged, or not the "
                                  "official file: its SHA-256 checksum differs)"))
        else:
            tmp_path.replace(target)
            return
        finally:
            tmp_path.unlink(missing_ok=True)
    raise DownloadError(spec.name, failures)


def _copy_url(url: str, path: Path, progress: Progress | None, label: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
        size = response.headers.get("Content-Length")
        task = None
        if progress is not None:
            progress.start()  # only now: offline, no empty display before the error
            task = progress.add_task(label, total=int(size) if size else None)
        while chunk := response.read(1 << 16):
            out.write(chunk)
            if task is not None:
                progress.advance(task, len(chunk))
