"""quality.options: eval and bench options refuse bad values with the flag's name."""

from __future__ import annotations

import pytest

from facecast.errors import InputError
from facecast.quality.clips import MODES
from facecast.quality.options import EVAL_BASELINES, EVAL_MODES, BenchOptions, EvalOptions
from facecast.quality.rows import GENERATORS


def test_options_reject_unknown_modes_and_baselines():
    with pytest.raises(InputError, match="mode"):
        EvalOptions(mode="dub2")
    with pytest.raises(InputError, match="baseline"):
        EvalOptions(baselines=("real", "blurry"))
    with pytest.raises(InputError, match="size"):
        EvalOptions(size=255)


def test_modes_and_baselines_named_in_options_have_their_implementations():
    assert set(EVAL_MODES) == set(MODES)
    assert set(EVAL_BASELINES) | {"facecast"} == set(GENERATORS)


def test_bench_options_are_validated():
    with pytest.raises(InputError):
        BenchOptions(sizes=(511,))
    with pytest.raises(InputError):
        BenchOptions(durations=(0,))
    with pytest.raises(InputError):
        BenchOptions(source="video")
    with pytest.raises(InputError, match="--encoders 0"):
        BenchOptions(encoders=0)
