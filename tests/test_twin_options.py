"""twin.options: every numeric field of the training options has a range (issue #18, item 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecast.errors import OptionError
from facecast.options import Range
from facecast.twin.options import PrepOptions, RenderTrainOptions, TwinTrainOptions
from test_options import ANY_NUMBER

CLASSES = [PrepOptions, RenderTrainOptions, TwinTrainOptions]
FIELDS = [(cls, name) for cls in CLASSES for name, rule in sorted(cls.RANGES.items()) if isinstance(rule, Range)]


def test_defaults_are_valid():
    for cls in CLASSES:
        obj = cls()
        assert all(rule.allows(getattr(obj, n)) for n, rule in cls.RANGES.items())


@pytest.mark.parametrize("make, option", [
    (lambda: PrepOptions(crop_px=0), "PrepOptions.crop_px"),
    (lambda: PrepOptions(crop_px=100), "PrepOptions.crop_px"),
    (lambda: PrepOptions(max_missing=float("nan")), "PrepOptions.max_missing"),
    (lambda: RenderTrainOptions(seconds=float("nan")), "RenderTrainOptions.seconds"),
    (lambda: RenderTrainOptions(steps=0), "RenderTrainOptions.steps"),
    (lambda: RenderTrainOptions(lr=float("inf")), "RenderTrainOptions.lr"),
    (lambda: RenderTrainOptions(scale=1.0), "RenderTrainOptions.scale"),
    (lambda: TwinTrainOptions(holdout=("may_en.mp4", 1.5)), "TwinTrainOptions.holdout"),
    (lambda: TwinTrainOptions(holdout=("", 0.2)), "TwinTrainOptions.holdout"),
    (lambda: TwinTrainOptions(background_max_s=0), "TwinTrainOptions.background_max_s"),
    (lambda: TwinTrainOptions(mouth_folds=-1), "TwinTrainOptions.mouth_folds"),
])
def test_out_of_range_is_refused(make, option):
    with pytest.raises(OptionError) as info:
        make()
    assert str(info.value).startswith(option) and "\n" not in str(info.value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=ANY_NUMBER)
def test_any_number_is_accepted_in_range_or_refused(field, value):
    cls, name = field
    try:
        obj = cls(**{name: value})
    except OptionError as exc:
        assert f"{cls.__name__}.{name}" in str(exc) and "\n" not in str(exc)
        return
    v = getattr(obj, name)
    assert cls.RANGES[name].allows(v) and (v is None or isinstance(v, (int, np.integer)) or math.isfinite(v))
