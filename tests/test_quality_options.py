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
    from facecast.quality import dub_eval

    # photo and twin prepare one clip at a time (clips.MODES); dub scores pairs of clips of one
    # person (the video of one with the sound of another): quality.dub_eval.run_eval.
    assert set(EVAL_MODES) == set(MODES) | {"dub"}
    assert callable(dub_eval.run_eval)
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


@pytest.mark.parametrize("make, words", [
    (lambda: EvalOptions(max_seconds=float("nan")), "--max-seconds"),
    (lambda: EvalOptions(max_seconds=float("inf")), "--max-seconds"),
    (lambda: EvalOptions(size=8192), "--size"),
    (lambda: EvalOptions(start_fraction=float("nan")), "--start-fraction"),
    (lambda: BenchOptions(durations=(float("inf"),)), "--durations"),
    (lambda: BenchOptions(durations=(float("nan"),)), "--durations"),
    (lambda: BenchOptions(sizes=(10**6,)), "--sizes"),
    (lambda: BenchOptions(repeats=10**9), "--repeats"),
    (lambda: BenchOptions(workers=-1), "--workers"),
    (lambda: BenchOptions(fps=float("nan")), "BenchOptions.fps"),
    (lambda: BenchOptions(sample_interval_s=0), "BenchOptions.sample_interval_s"),
    (lambda: BenchOptions(batch_frames=0), "BenchOptions.batch_frames"),
])
def test_non_finite_and_huge_values_are_refused(make, words):
    """nan, inf and absurd sizes used to pass (nan > 0 is False, but so is nan <= 0)."""
    with pytest.raises(InputError) as info:
        make()
    assert words in str(info.value) and "\n" not in str(info.value)
