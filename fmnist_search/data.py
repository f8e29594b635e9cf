"""Finding, verifying, loading and splitting Fashion-MNIST.

The four IDX files are checked by the SHA-256 of their *decompressed* content, not of the
``.gz`` wrapper: Debian's package recompresses the official files (different gzip bytes, same
images), and a content hash accepts every faithful copy while still catching any truncation or
corruption. The hash is computed during the one decompression that loading needs anyway.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
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
from fmnist_search.images import CLASS_NAMES, IMAGE_SHAPE, N_PIXELS  # noqa: F401 (re-exported)

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
        places.append(("--data-dir" if data_dir else "FMNIST_DATA", Path(explicit)))
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


# --------------------------------------------------------------------------- reading


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


@dataclass
class RawData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str
    test_ids: np.ndarray | None = None
    fashion_labels: bool = True  # the labels are Fashion-MNIST's ids (always so for IDX)
    test_note: str | None = None  # why y_test is None


def load_idx_dir(source: Source, verify: bool = True) -> RawData:
    arrays = {
        key: read_idx(source.directory / spec.name, spec if verify else None)
        for key, spec in FILES.items()
    }
    return RawData(
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        source=f"{source.label}: {source.directory}",
    )


# --------------------------------------------------------------------------- fetching


def ensure_local_copy(settings: DataSettings, console: Console | None = None) -> None:
    """What training commands do first: when no copy is found anywhere and none was named,
    download the official files into the project cache (as ``keras.datasets`` does), so that
    a first run needs no set-up. Offline, the one message saying what else to do."""
    if settings.train_csv:
        return  # a training CSV brings its own classes and test set (see load_raw)
    try:
        locate(settings.data_dir)
    except DataNotFound as missing:
        if console is not None:
            console.print(f"Fashion-MNIST was not found on this machine: downloading the "
                          f"official files (30 MB) into {project_cache()}/")
        try:
            fetch(console=console)
        except DownloadError as exc:
            raise UserError(not_found_message(missing.places, exc.reason)) from exc


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


# --------------------------------------------------------------------------- preparing


DEFAULT_SEED = 42  # the seed of splits and weights when none is given


@dataclass(frozen=True)
class DataSettings:
    """Every training command's data options; also the project's data fingerprint."""

    classes: tuple[int, ...] | None = None
    val_fraction: float = 0.2
    subset: float = 1.0
    seed: int = DEFAULT_SEED
    data_dir: str | None = None
    train_csv: str | None = None
    test_csv: str | None = None
    fashion_labels: bool = False  # a training CSV's labels are Fashion-MNIST's class ids

    @classmethod
    def from_options(cls, classes: str | None = None, val_fraction: float = 0.2,
                     subset: float | None = None, seed: int | None = None,
                     data_dir: str | None = None, train_csv: str | None = None,
                     test_csv: str | None = None, fashion_labels: bool = False) -> DataSettings:
        """From what a user typed (None: not given), so that defaults live here only."""
        return cls(parse_classes(classes), val_fraction, subset or 1.0,
                   DEFAULT_SEED if seed is None else seed, data_dir, train_csv, test_csv,
                   fashion_labels)

    @classmethod
    def from_record(cls, data: dict, data_dir: str | None = None,
                    test_csv: str | None = None, subset: float = 1.0) -> DataSettings:
        """A project's recorded data settings, on the whole training split by default (as
        ``retrain`` trains; a distributed worker passes the search's subset): the same classes,
        split and seed; a test CSV given now replaces its own."""
        return cls(tuple(data["classes"]), data["val_fraction"], subset, data["seed"], data_dir,
                   data.get("train_csv"), test_csv or data.get("test_csv"),
                   bool(data.get("fashion_labels")))

    def fingerprint(self) -> dict:
        out = {
            "classes": list(self.classes) if self.classes else list(range(len(CLASS_NAMES))),
            "val_fraction": self.val_fraction,
            "subset": self.subset,
            "seed": self.seed,
            "train_csv": self.train_csv,
            "test_csv": self.test_csv,
        }
        if self.train_csv:  # only here: IDX projects keep the fingerprint they resume with
            out["fashion_labels"] = self.fashion_labels
        return out


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str]
    source: str
    settings: DataSettings
    test_ids: np.ndarray | None = None
    classes: tuple[int, ...] = tuple(range(len(CLASS_NAMES)))  # label of each model output
    test_note: str | None = None  # why there is no test accuracy, when there is none

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> dict:
        return {
            **self.settings.fingerprint(),
            "classes": list(self.classes),
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.x_test),
        }

    def digest(self) -> str:
        """A digest of the images and labels themselves (every 50th training image): two
        machines with the same settings but other files must not join one search."""
        h = hashlib.sha256()
        for array in (self.y_train, self.y_val, self.x_train[::50], self.x_val[::50]):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()[:16]


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise UserError(
            f"--classes {text!r} is not a comma-separated list of class ids such as 0,2,4 "
            f"(valid ids 0-{len(CLASS_NAMES) - 1})."
        ) from exc
    bad = [v for v in values if not 0 <= v < len(CLASS_NAMES)]
    if bad or len(set(values)) != len(values) or len(values) < 2:
        raise UserError(
            f"--classes {text!r}: give at least two distinct ids from 0 to "
            f"{len(CLASS_NAMES) - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(CLASS_NAMES))})."
        )
    return values


NO_TEST_SET = "no test set"
NO_TEST_LABELS = "no labels"


def load_raw(settings: DataSettings) -> RawData:
    """A training CSV brings its own classes and test set: the official test set is used only
    with the official training images, since a CSV's labels need not be Fashion-MNIST's."""
    from fmnist_search import csvdata

    if settings.train_csv:
        raw = _load_train_csv(settings)
    else:
        raw = load_idx_dir(locate(settings.data_dir))
    if settings.test_csv:
        test = csvdata.read_csv(settings.test_csv, require_labels=False, option="--test-csv")
        raw.x_test, raw.y_test, raw.test_ids = test.x, test.y, test.ids
        raw.test_note = None if test.y is not None else NO_TEST_LABELS
        raw.source += f"; test CSV {settings.test_csv}"
    return raw


def _load_train_csv(settings: DataSettings) -> RawData:
    from fmnist_search import csvdata

    train = csvdata.read_csv(settings.train_csv, option="--train-csv")
    held = np.unique(train.y)
    fashion = settings.fashion_labels or len(held) == len(CLASS_NAMES)
    empty = np.zeros((0, *IMAGE_SHAPE), dtype=np.uint8)
    return RawData(train.x, train.y, empty, None, f"CSV {settings.train_csv}",
                   fashion_labels=fashion, test_note=NO_TEST_SET)


def class_names(classes: Sequence[int], fashion: bool) -> list[str]:
    """Fashion-MNIST's names only where the labels are its ids; else the labels as written."""
    return [CLASS_NAMES[c] if fashion else f"class {c}" for c in classes]


def prepare(settings: DataSettings, raw: RawData | None = None) -> Dataset:
    """Select classes, take the stratified subset, split off validation, scale to [0, 1]."""
    _check_fractions(settings)
    raw = raw or load_raw(settings)
    classes = resolve_classes(settings, raw)
    x, y = select_classes(raw.x_train, raw.y_train, classes)
    _check_class_sizes(y, classes, raw)
    x_train, x_val, y_train, y_val = _split(x, y, settings, raw)
    x_test, y_test, test_ids = _test_part(raw, classes, settings)
    return Dataset(
        scale(x_train), y_train, scale(x_val), y_val, scale(x_test), y_test,
        class_names=class_names(classes, raw.fashion_labels),
        source=raw.source,
        settings=settings,
        test_ids=test_ids,
        classes=classes,
        test_note=raw.test_note,
    )


def resolve_classes(settings: DataSettings, raw: RawData) -> tuple[int, ...]:
    """The model's classes: --classes, else every label the training data holds."""
    held = tuple(int(c) for c in np.unique(raw.y_train))
    if settings.classes:
        missing = [c for c in settings.classes if c not in held]
        if missing:
            raise UserError(
                f"The classes asked for ({','.join(map(str, settings.classes))}, from --classes "
                f"or the project's record) include {', '.join(map(str, missing))}, but "
                f"{raw.source} holds no image so labelled; its labels are "
                f"{', '.join(map(str, held))}."
            )
        return tuple(settings.classes)
    if len(held) < 2:
        raise UserError(f"{raw.source}: every image is labelled {held[0] if held else '-'}; a "
                        "classifier needs at least two classes.")
    return held


def _check_class_sizes(y: np.ndarray, classes: Sequence[int], raw: RawData) -> None:
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        label = classes[int(counts.argmin())]
        raise UserError(f"{raw.source}: class {label} has {int(counts.min())} image(s); a "
                        "stratified validation split needs at least 2 of every class.")


def min_split_images(k: int, val_fraction: float) -> int:
    """The fewest images a stratified train/validation split of k classes can take."""
    return max(2 * k, math.ceil(k / val_fraction), math.ceil((k + 1) / (1 - val_fraction)))


def _split(x: np.ndarray, y: np.ndarray, settings: DataSettings, raw: RawData) -> tuple:
    """The stratified subset, then the stratified validation split; too few images is a
    message naming the option to change, not scikit-learn's ValueError."""
    from sklearn.model_selection import train_test_split

    k, n = int(y.max()) + 1, len(y)
    need = min_split_images(k, settings.val_fraction)
    if math.floor(settings.subset * n) < need:
        raise UserError(_split_problem(settings, raw, n, need, k))
    try:
        if settings.subset < 1.0:
            x, _, y, _ = train_test_split(x, y, train_size=settings.subset, stratify=y,
                                          random_state=settings.seed)
        return train_test_split(x, y, test_size=settings.val_fraction, stratify=y,
                                random_state=settings.seed)
    except ValueError as exc:
        raise UserError(_split_problem(settings, raw, n, need, k) + f" ({exc})") from exc


def _split_problem(settings: DataSettings, raw: RawData, n: int, need: int, k: int) -> str:
    split = (f"a stratified split of {k} classes into training and validation "
             f"(--val-fraction {settings.val_fraction:g}) needs at least {need:,} images")
    if need > n:
        return f"{raw.source} has {n:,} training images of the chosen classes; {split}."
    kept = math.floor(settings.subset * n)
    return (f"--subset {settings.subset:g} keeps {kept:,} of the {n:,} training images of "
            f"{raw.source}; {split}: use --subset {math.ceil(need / n * 1000) / 1000:g} or "
            "more.")


def _test_part(raw: RawData, classes: tuple[int, ...], settings: DataSettings) -> tuple:
    """The test images of the model's classes (all of them when the test set has no labels)."""
    if raw.y_test is None:
        return raw.x_test, None, raw.test_ids
    stray = ~np.isin(raw.y_test, classes)
    if stray.any() and settings.test_csv and not settings.classes:
        raise UserError(
            f"--test-csv {settings.test_csv}: row {int(np.argmax(stray)) + 1} is labelled "
            f"{int(raw.y_test[np.argmax(stray)])}, a class the training data does not hold "
            f"(its classes: {', '.join(map(str, classes))})."
        )
    keep = ~stray
    ids = raw.test_ids[keep] if raw.test_ids is not None else None
    x, y = select_classes(raw.x_test, raw.y_test, classes)
    return x, y, ids


def _check_fractions(settings: DataSettings) -> None:
    if not 0.0 < settings.subset <= 1.0:
        raise UserError(f"--subset {settings.subset:g} must be a fraction in (0, 1], e.g. 0.1.")
    if not 0.0 < settings.val_fraction < 1.0:
        raise UserError(f"--val-fraction {settings.val_fraction:g} must be in (0, 1), e.g. 0.2.")


def select_classes(x: np.ndarray, y: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the chosen classes and renumber them 0..k-1 in the order given."""
    mapping = np.full(len(CLASS_NAMES), -1, dtype=np.int64)
    mapping[list(classes)] = np.arange(len(classes))
    keep = mapping[y] >= 0
    return x[keep], mapping[y[keep]].astype(np.uint8)


def scale(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[..., np.newaxis]


def class_counts(raw: RawData, ds: Dataset) -> dict[str, list[int]]:
    """Images per class in each part: the training set before the split, then each split."""
    k = ds.num_classes
    counts = {
        "train (before split)": np.bincount(select_classes(raw.x_train, raw.y_train,
                                                           ds.classes)[1], minlength=k).tolist(),
        "train": np.bincount(ds.y_train, minlength=k).tolist(),
        "validation": np.bincount(ds.y_val, minlength=k).tolist(),
    }
    if ds.y_test is not None:
        counts["test"] = np.bincount(ds.y_test, minlength=k).tolist()
    return counts
