"""How a Ray job's files reach its worker and its output comes back (``BatchOptions.ray_media``;
docs/scaling.md). The caller's side:

    fingerprint(path)             size + SHA-256 of the first and last MiB: "the same file" (auto)
    OutputProbes                  a hidden marker file in each output folder, to ask a worker
                                  whether it sees that folder (auto), removed at the end
    ship(ray, files, limit, ...)  a job's input files into the object store, in CHUNK_BYTES
                                  pieces (TooBig over the limit, before anything is put)
    write_back(files)             the outputs a worker sent back, written atomically (MP4 last)

and the worker's:

    sees(fingerprints), sees_probe(folder, name)   what this node sees of the caller's files
    JobFolder                     a job's temporary folder: the shipped inputs materialised in
                                  it (in/K/NAME: files of one caller folder stay together, so a
                                  Piper voice keeps its FILE.onnx.json), the outputs rendered in
                                  out/, sent back as bytes; removed when the job ends however
                                  it ends. A worker killed mid-job leaves its folder: the next
                                  worker that starts on the node removes the folders of dead
                                  processes (``sweep_dead``).

Memory: the caller reads one chunk at a time (CHUNK_BYTES), the object store holds a job's
inputs while it is in flight (at most ``limit`` bytes a job), the worker writes them to disk
chunk by chunk; an output comes back as one object read straight from its file (memory-mapped),
which the caller writes out from the store without copying it into its own memory.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError

__all__ = ["CHUNK_BYTES", "FINGERPRINT_BYTES", "Fingerprint", "fingerprint", "sees", "OutputProbes", "sees_probe",
           "ShippedFile", "ship", "TooBig", "JobFolder", "write_back", "jobs_root", "sweep_dead", "megabytes"]

CHUNK_BYTES = 64 << 20
"""Bytes of one object-store piece of a shipped input (the caller holds one at a time)."""

FINGERPRINT_BYTES = 1 << 20
"""Bytes hashed at each end of a file to tell whether a worker sees the caller's file."""

PROBE_PREFIX = ".facecast-probe-"
ROOT_NAME = "facecast-ray-jobs"

Where = Callable[[Path], Path]


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


# -- is it the same file? ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """A job's input as the caller sees it: its path, size, and the SHA-256 of its first and
    last FINGERPRINT_BYTES."""

    path: Path
    size: int
    digest: str


def _digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            h.update(f.read(FINGERPRINT_BYTES))
    return h.hexdigest()


def fingerprint(path: Path, where: Where = lambda p: p) -> Fingerprint:
    """``path``'s Fingerprint, reading the caller's own copy at ``where(path)``."""
    local = where(path)
    size = local.stat().st_size
    return Fingerprint(path, size, _digest(local, size))


def sees(fingerprints) -> bool:
    """Whether this node sees every one of the caller's files at its path, with the same size
    and the same first and last MiB."""
    for fp in fingerprints:
        try:
            if fp.path.stat().st_size != fp.size or _digest(fp.path, fp.size) != fp.digest:
                return False
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class OutputProbes:
    """One hidden empty marker file per output folder (``.facecast-probe-HOST-PID-XXXX``), made
    by the caller so that a worker can tell whether it sees the caller's folder; ``close``
    removes them. Markers a killed caller of this host left are removed on the next start."""

    def __init__(self, folders, where: Where = lambda p: p) -> None:
        self.names: dict[Path, str] = {}
        self._files: list[Path] = []
        host = socket.gethostname().replace("-", "_")
        for folder in dict.fromkeys(folders):
            local = where(folder)
            self._sweep(local, host)
            try:
                fd, name = tempfile.mkstemp(prefix=f"{PROBE_PREFIX}{host}-{os.getpid()}-", dir=local)
            except OSError:  # a folder we cannot write: the workers write nothing there either
                continue
            os.close(fd)
            self._files.append(Path(name))
            self.names[folder] = Path(name).name

    @staticmethod
    def _sweep(folder: Path, host: str) -> None:
        for old in folder.glob(f"{PROBE_PREFIX}{host}-*"):
            pid = old.name[len(PROBE_PREFIX) + len(host) + 1:].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                old.unlink(missing_ok=True)

    def close(self) -> None:
        for f in self._files:
            f.unlink(missing_ok=True)
        self._files = []


def sees_probe(folder: Path, name: str) -> bool:
    return bool(name) and (folder / name).is_file()


# -- shipping inputs ---------------------------------------------------------------------------


class TooBig(InputError):
    """A job's files are more than the object store may carry for one job."""


@dataclass(frozen=True)
class ShippedFile:
    """One input in the object store: the caller's path, its size, its pieces (ObjectRefs)."""

    path: Path
    size: int
    chunks: tuple


def ship(ray, files: list[tuple[str, Path]], limit_bytes: int, where: Where = lambda p: p) -> tuple[ShippedFile, ...]:
    """Put ``files`` ((label, path)) into the object store in CHUNK_BYTES pieces. TooBig, before
    anything is put, when together they are over ``limit_bytes``."""
    sizes = [(label, path, where(path).stat().st_size) for label, path in files]
    total = sum(s for _, _, s in sizes)
    if total > limit_bytes:
        label, path, size = max(sizes, key=lambda t: t[2])
        raise TooBig(f"its inputs are {megabytes(total)} ({label} {path}: {megabytes(size)}), over the "
                     f"{megabytes(limit_bytes)} one job may ship through Ray's object store: raise --ray-media-limit "
                     "or put the files on storage every node sees (--ray-media shared-storage)")
    out = []
    for _, path, size in sizes:
        chunks = []
        with open(where(path), "rb") as f:
            while True:
                piece = f.read(CHUNK_BYTES)
                if not piece:
                    break
                chunks.append(ray.put(np.frombuffer(piece, np.uint8)))
                del piece
        out.append(ShippedFile(path, size, tuple(chunks)))
    return tuple(out)


# -- the worker's job folder -------------------------------------------------------------------


def jobs_root() -> Path:
    """Where workers make their job folders: TMPDIR/facecast-ray-jobs (a folder per job, named
    PID-XXXX by the worker process that made it)."""
    return Path(tempfile.gettempdir()) / ROOT_NAME


def sweep_dead(root: Path | None = None) -> None:
    """Remove the job folders of worker processes that are gone (killed mid-job)."""
    root = root or jobs_root()
    if not root.is_dir():
        return
    for d in root.iterdir():
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


class JobFolder:
    """A job's temporary folder on the worker (see the module docstring); a context manager
    that removes it on exit, whatever happened."""

    def __init__(self, root: Path | None = None) -> None:
        root = root or jobs_root()
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        self.moves: dict[Path, Path] = {}
        self._folders: dict[Path, Path] = {}

    def __enter__(self) -> "JobFolder":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _place(self, path: Path, kind: str) -> Path:
        folder = self._folders.get((kind, path.parent))
        if folder is None:
            folder = self.path / kind / str(len(self._folders))
            folder.mkdir(parents=True)
            self._folders[(kind, path.parent)] = folder
        self.moves[path] = folder / path.name
        return self.moves[path]

    def materialise(self, get, shipped) -> None:
        """Write each shipped input into the folder, one piece at a time (``get``: ray.get)."""
        for f in shipped:
            dst = self._place(f.path, "in")
            with open(dst, "wb") as out:
                for ref in f.chunks:
                    piece = get(ref)
                    out.write(memoryview(piece))
                    del piece
            if dst.stat().st_size != f.size:
                raise InputError(f"{f.path}: {dst.stat().st_size} of its {f.size} bytes arrived on this node")

    def move(self, path: Path) -> Path:
        """Where a caller's input path is in this folder (itself when it was not shipped)."""
        return self.moves.get(path, path)

    def output(self, path: Path) -> Path:
        """Where the job writes the caller's output ``path`` in this folder."""
        return self._place(path, "out")

    def collect(self, outputs: list[Path], limit_bytes: int) -> list[tuple[Path, np.ndarray]]:
        """The outputs the job wrote ((caller's path, bytes as a memory-mapped array)), MP4
        last; TooBig when together they are over ``limit_bytes``."""
        found = [(p, self.moves[p]) for p in outputs if p in self.moves and self.moves[p].is_file()]
        total = sum(local.stat().st_size for _, local in found)
        if total > limit_bytes:
            raise TooBig(f"its output is {megabytes(total)}, over the {megabytes(limit_bytes)} one job may send back "
                         "through Ray's object store: raise --ray-media-limit or write it on storage every node sees "
                         "(--ray-media shared-storage)")
        return [(p, _mapped(local)) for p, local in found]

    def caller_words(self, text: str) -> str:
        """A message about the job with this folder's paths named as the caller knows them."""
        for theirs, ours in sorted(self.moves.items(), key=lambda kv: -len(str(kv[1]))):
            text = text.replace(str(ours), str(theirs))
        return text


def _mapped(path: Path) -> np.ndarray:
    """The file's bytes as a read-only array over a memory map (valid after the file is removed)."""
    if path.stat().st_size == 0:
        return np.zeros(0, np.uint8)
    with open(path, "rb") as f:
        return np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)


# -- the caller writes what came back ----------------------------------------------------------


def write_back(files: list[tuple[Path, np.ndarray]], where: Where = lambda p: p) -> None:
    """Write each (caller's path, bytes) atomically (a hidden partial file renamed into place),
    in order: the MP4 comes last, so a complete MP4 means its subtitle files are there too."""
    from ..media.mp4 import partial_path

    for path, data in files:
        dst = where(path)
        tmp = partial_path(dst)
        try:
            with open(tmp, "wb") as f:
                f.write(memoryview(data))
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
