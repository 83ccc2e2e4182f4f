"""The .twin file: one self-describing safetensors file.

Layout
------
tensors
  render.*        RenderNet weights (float16: halves the file, inference runs in half anyway)
  mouth.*         MouthModel state (float32; small)
  reference       uint8 [R,R,3] the reference mouth crop the renderer copies texture from
  bg.video        uint8 [bytes] H.264 MP4 (CRF 12) of the background loop: real footage of the
                  person (head motion, blinks), whose lower face is regenerated
  bg.affine       float32 [M,2,3] per background frame: source px -> mouth-crop px
metadata (strings)
  format          "facecast-twin";  version  "1"
  config          JSON: {"render": RenderConfig, "mouth": MouthConfig, "crop": {...},
                  "background": {"fps", "size", "frames"}, "summary": training-data summary,
                  "training": per-stage seconds and quality figures}
  sha256          hash over every tensor's name, dtype, shape and bytes (sorted by name), so a
                  damaged or edited file is caught before it renders garbage.

``save_twin(path, twin)`` writes atomically (temp file + rename); ``load_twin(path)`` checks
the format, version and hash and raises InputError naming the file and what is wrong.
``is_twin_file(path)`` tells a twin by its content (the header), whatever the file is called.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from facecast.errors import InputError

__all__ = ["FORMAT", "VERSION", "TwinData", "is_twin_file", "load_twin", "safetensors_metadata", "save_twin",
           "tensor_hash"]

FORMAT = "facecast-twin"
VERSION = 1


@dataclass
class TwinData:
    """Everything in a .twin file, as tensors on the CPU plus the parsed config."""

    render_state: dict[str, torch.Tensor]
    mouth_state: dict[str, torch.Tensor]
    reference: torch.Tensor  # uint8 [R,R,3]
    bg_video: bytes
    bg_affine: torch.Tensor  # float32 [M,2,3]
    config: dict = field(default_factory=dict)
    sha256: str = ""


def tensor_hash(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_twin(path: str | Path, twin: TwinData) -> str:
    """Write ``twin`` to ``path``; returns the content hash."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"render.{k}": v.detach().cpu().half().contiguous() if v.is_floating_point() else v.detach().cpu()
               for k, v in twin.render_state.items()}
    tensors.update({f"mouth.{k}": v.detach().cpu().contiguous() for k, v in twin.mouth_state.items()})
    tensors["reference"] = twin.reference.cpu().contiguous()
    tensors["bg.video"] = torch.frombuffer(bytearray(twin.bg_video), dtype=torch.uint8)
    tensors["bg.affine"] = twin.bg_affine.float().cpu().contiguous()
    digest = tensor_hash(tensors)
    meta = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(twin.config), "sha256": digest}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not the 0600 of a temp file
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    twin.sha256 = digest
    return digest


def load_twin(path: str | Path) -> TwinData:
    """Read and verify a .twin file (InputError for a missing, foreign, newer or damaged file)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such twin file. Make one with: facecast twin train VIDEO... -o {p.name}")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a .twin file.")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise InputError(f"{p}: not a facecast twin (a safetensors file without the twin header). "
                                 "Give a file made by `facecast twin train`.")
            version = int(meta.get("version", "0"))
            if version > VERSION:
                raise InputError(f"{p}: twin format version {version} is newer than this facecast reads "
                                 f"({VERSION}). Upgrade facecast.")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as exc:
        raise InputError(f"{p}: not a readable .twin file ({exc}). The file is damaged or not a twin; "
                         "train it again with `facecast twin train`.") from exc
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read this .twin file ({exc}). It is damaged; train it again.") from exc
    digest = tensor_hash(tensors)
    if digest != meta.get("sha256"):
        raise InputError(f"{p}: the twin file is damaged (content hash {digest[:12]} does not match the "
                         f"recorded {str(meta.get('sha256'))[:12]}). Copy it again or re-train.")
    try:
        config = json.loads(meta["config"])
        return TwinData(
            render_state={k[7:]: v for k, v in tensors.items() if k.startswith("render.")},
            mouth_state={k[6:]: v for k, v in tensors.items() if k.startswith("mouth.")},
            reference=tensors["reference"],
            bg_video=tensors["bg.video"].numpy().tobytes(),
            bg_affine=tensors["bg.affine"],
            config=config,
            sha256=digest,
        )
    except (KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: the twin file lacks {exc}; it was written by an incompatible tool. Re-train.") from exc


def safetensors_metadata(path: str | Path) -> dict | None:
    """The metadata of a safetensors file (``{}`` when it has none), or None when ``path`` is not
    a readable safetensors file. Reads the header only: 8 bytes of length, then that much JSON."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return None
            n = int.from_bytes(head, "little")
            if n < 2 or n > 100 * 2**20 or n > os.fstat(f.fileno()).st_size - 8:
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError):  # not a file, unreadable, or not JSON (UnicodeDecodeError too)
        return None
    if not isinstance(header, dict):
        return None
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else None


def is_twin_file(path: str | Path) -> bool:
    """Whether ``path`` is a twin by its content: a safetensors file whose metadata says
    ``format: facecast-twin`` (the name does not matter)."""
    meta = safetensors_metadata(path)
    return meta is not None and meta.get("format") == FORMAT
