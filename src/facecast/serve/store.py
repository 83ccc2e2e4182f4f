"""The job store: SQLite in WAL mode under the data folder, plus one folder per job and per face.

    DATA/facecast.sqlite3   jobs and faces (WAL: readers never wait for the writer; each
                            change is committed before the API answers, so it survives kill -9)
    DATA/jobs/<job id>/     a job's inputs (face.*, audio.*), job.json (what its worker runs),
                            log.txt (the worker's log), result.mp4 | result.twin (appears only
                            when finished: atomic rename), twin.work/ (twin training's resumable
                            work folder)
    DATA/faces/<face id>/   an uploaded face (face.*) or a trained twin (face.twin)
    DATA/tmp/               uploads being received; emptied at start (what a killed upload left)

Ids are made here (``new_id``: a kind letter and 20 hex digits) and checked by ``valid_id``
before any path is built from one: no client string ever reaches the file system.

Public API: ``Store`` (``jobs`` and ``faces`` methods), ``Job``, ``Face``, ``JOB_STATES``,
``ACTIVE_STATES``, ``new_id``, ``valid_id``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import InputError

__all__ = ["ACTIVE_STATES", "Face", "JOB_STATES", "Job", "Store", "new_id", "valid_id"]

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
_ID = re.compile(r"^[jf]_[0-9a-f]{20}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, stage TEXT, eta_s REAL, error TEXT,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, attempts INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT, request_hash TEXT, result TEXT, face_id TEXT, inputs TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(owner, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, created_at);
CREATE TABLE IF NOT EXISTS faces (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL, name TEXT,
    bytes INTEGER NOT NULL, created_at REAL NOT NULL, job_id TEXT
);
CREATE INDEX IF NOT EXISTS faces_owner ON faces(owner, created_at);
"""


def new_id(kind: str) -> str:
    """A fresh server-made id: "j_" (job) or "f_" (face) and 20 random hex digits."""
    return f"{kind}_{secrets.token_hex(10)}"


def valid_id(value: str, kind: str) -> bool:
    """Whether ``value`` is an id this server could have made for ``kind`` ("j" or "f")."""
    return isinstance(value, str) and bool(_ID.match(value)) and value[0] == kind


@dataclass(frozen=True)
class Job:
    """One row of the jobs table. spec: the validated spec (dict); inputs: role -> file name in
    the job folder ({"face": "face.png", "audio": "audio.wav"}); result: the finished file's name;
    attempts: how many times a worker started it."""

    id: str
    owner: str
    kind: str
    spec: dict
    status: str
    progress: float
    stage: str | None
    eta_s: float | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    idem_key: str | None
    request_hash: str | None
    result: str | None
    face_id: str | None
    inputs: dict

    def public(self) -> dict:
        """What the API shows of a job."""
        return {"id": self.id, "kind": self.kind, "status": self.status, "progress": round(self.progress, 4),
                "stage": self.stage, "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
                "error": self.error, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "attempts": self.attempts, "face_id": self.face_id,
                "spec": self.spec, "result": f"/v1/jobs/{self.id}/result" if self.status == "done" else None}


@dataclass(frozen=True)
class Face:
    """One row of the faces table: kind "image" | "video" | "twin"; file: its name in the face
    folder; name: the client's file name (shown only, never used as a path); job_id: the
    twin_train job that made it."""

    id: str
    owner: str
    kind: str
    file: str
    name: str | None
    bytes: int
    created_at: float
    job_id: str | None

    def public(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "bytes": self.bytes,
                "created_at": self.created_at, "job_id": self.job_id}


_JOB_COLS = [f.name for f in fields(Job)]
_FACE_COLS = [f.name for f in fields(Face)]


class Store:
    """Jobs and faces in SQLite (one connection, serialised by a lock: every call is a few
    milliseconds) and their folders under ``data_dir``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        self._lock = threading.Lock()
        try:
            for sub in ("jobs", "faces", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            for leftover in (self.root / "tmp").iterdir():  # uploads a killed server was receiving
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            self._db = sqlite3.connect(self.root / "facecast.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except OSError as exc:
            raise InputError(f"--data-dir {self.root}: cannot be used ({exc.strerror or exc}). Choose a folder you "
                             "can write to.") from None
        except sqlite3.Error as exc:
            raise InputError(f"--data-dir {self.root}: its facecast.sqlite3 cannot be opened ({exc}). Is it a facecast "
                             "data folder? Choose another --data-dir.") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- folders ---------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not valid_id(job_id, "j"):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / "jobs" / job_id

    def face_dir(self, face_id: str) -> Path:
        if not valid_id(face_id, "f"):
            raise ValueError(f"not a face id: {face_id!r}")
        return self.root / "faces" / face_id

    def staging_dir(self) -> Path:
        """A fresh folder for one request's uploads (removed by the caller, or at the next start)."""
        p = self.root / "tmp" / secrets.token_hex(8)
        p.mkdir()
        return p

    # -- jobs ------------------------------------------------------------------------------
    def add_job(self, job: Job) -> tuple[Job, bool]:
        """Insert ``job``; (job, True). When its (owner, idem_key) exists already: (that job, False)."""
        row = [json.dumps(getattr(job, c)) if c in ("spec", "inputs") else getattr(job, c) for c in _JOB_COLS]
        with self._lock:
            try:
                self._db.execute(f"INSERT INTO jobs ({','.join(_JOB_COLS)}) VALUES ({','.join('?' * len(row))})", row)
                return job, True
            except sqlite3.IntegrityError:
                if job.idem_key is None:
                    raise
                cur = self._db.execute("SELECT * FROM jobs WHERE owner=? AND idem_key=?", (job.owner, job.idem_key))
                return self._job(cur.fetchone()), False

    def job_by_key(self, owner: str, idem_key: str) -> Job | None:
        with self._lock:
            cur = self._db.execute("SELECT * FROM jobs WHERE owner=? AND idem_key=?", (owner, idem_key))
            row = cur.fetchone()
        return self._job(row) if row else None

    def get_job(self, job_id: str) -> Job | None:
        if not valid_id(job_id, "j"):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def list_jobs(self, owner: str, limit: int = 100, status: str | None = None) -> list[Job]:
        q, args = "SELECT * FROM jobs WHERE owner=?", [owner]
        if status is not None:
            q, args = q + " AND status=?", args + [status]
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created_at DESC LIMIT ?", args + [limit]).fetchall()
        return [self._job(r) for r in rows]

    def count_active(self, owner: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE owner=? AND status IN ('queued','running')",
                                    (owner,)).fetchone()[0]

    def queued(self, limit: int) -> list[Job]:
        """The oldest queued jobs, first come first served."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status='queued' ORDER BY created_at LIMIT ?",
                                    (limit,)).fetchall()
        return [self._job(r) for r in rows]

    def update_job(self, job_id: str, **values) -> None:
        cols = list(values)
        for c in cols:
            if c not in _JOB_COLS or c == "id":
                raise ValueError(f"no such job column: {c}")
        args = [json.dumps(values[c]) if c in ("spec", "inputs") else values[c] for c in cols]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {', '.join(c + '=?' for c in cols)} WHERE id=?", args + [job_id])

    def requeue_running(self) -> list[str]:
        """At start: jobs a lost server was running go back to the queue (their ids)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE status='running'")]
            self._db.execute("UPDATE jobs SET status='queued', stage='re-queued', eta_s=NULL WHERE status='running'")
        return ids

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({s: n for s, n in rows})
        return counts

    def job_seconds(self) -> dict[str, tuple[float, int]]:
        """kind -> (total seconds, count) of finished runs (done jobs: start to finish)."""
        with self._lock:
            rows = self._db.execute("SELECT kind, SUM(finished_at - started_at), COUNT(*) FROM jobs WHERE "
                                    "status='done' AND started_at IS NOT NULL GROUP BY kind").fetchall()
        return {k: (float(s or 0.0), int(n)) for k, s, n in rows}

    @staticmethod
    def _job(row) -> Job:
        d = dict(zip(_JOB_COLS, row))
        d["spec"], d["inputs"] = json.loads(d["spec"]), json.loads(d["inputs"])
        return Job(**d)

    # -- faces -----------------------------------------------------------------------------
    def add_face(self, face: Face) -> Face:
        row = [getattr(face, c) for c in _FACE_COLS]
        with self._lock:
            self._db.execute(f"INSERT INTO faces ({','.join(_FACE_COLS)}) VALUES ({','.join('?' * len(row))})", row)
        return face

    def get_face(self, face_id: str) -> Face | None:
        if not valid_id(face_id, "f"):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM faces WHERE id=?", (face_id,)).fetchone()
        return Face(**dict(zip(_FACE_COLS, row))) if row else None

    def list_faces(self, owner: str, limit: int = 1000) -> list[Face]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM faces WHERE owner=? ORDER BY created_at DESC LIMIT ?",
                                    (owner, limit)).fetchall()
        return [Face(**dict(zip(_FACE_COLS, r))) for r in rows]

    def face_path(self, face: Face) -> Path:
        return self.face_dir(face.id) / face.file

    def delete_face(self, face_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM faces WHERE id=?", (face_id,))
        shutil.rmtree(self.face_dir(face_id), ignore_errors=True)


def now() -> float:
    return time.time()
