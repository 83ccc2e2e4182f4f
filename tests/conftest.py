"""Shared fixtures: real media from ../shared/media (skipped when absent, a failure under CI=true)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def media(relpath: str) -> Path:
    """Path of a file under ../shared/media; skips the test when the folder is absent,
    fails it under CI=true (CI must always have the real media)."""
    path = MEDIA / relpath
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"real media missing under CI: {path}")
        pytest.skip(f"real media not available: {path}")
    return path


@pytest.fixture
def media_path():
    return media
