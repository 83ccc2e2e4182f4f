"""Option dataclasses: every numeric field has a range, checked on construction (issue #18, item 5).

Property-based: any float (nan, inf, negatives, huge) for any numeric field is either accepted
(and then within the documented range, and usable: the motion it drives stays sane) or refused
at once with one line naming ``Class.field`` and the range. StreamOptions also goes through
``stream.check_options`` as it is today.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecast.dubbing.options import DubOptions
from facecast.errors import InputError, OptionError
from facecast.options import (
    X264_PRESETS,
    Choice,
    EncodeOptions,
    MotionOptions,
    Range,
    RenderOptions,
    SayOptions,
    StreamOptions,
)

ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 0.5, 2, 3, 51, 52, 64, 120, 121, 4096, 2**32, float("nan"), float("inf"), -float("inf"),
                     1e6, -1e-9, 5e-324, 1e308]),
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLASSES = [MotionOptions, RenderOptions, EncodeOptions, SayOptions, StreamOptions, DubOptions]


def numeric_fields(cls):
    return sorted(name for name, rule in cls.RANGES.items() if isinstance(rule, Range))


ALL_FIELDS = [(cls, name) for cls in CLASSES for name in numeric_fields(cls)]


def test_every_numeric_field_has_a_range():
    """No numeric option without a range: each int/float field of the option dataclasses is in RANGES."""
    for cls in CLASSES:
        numeric = {f.name for f in fields(cls) if str(f.type).replace(" ", "") in
                   ("int", "float", "int|None", "float|None")}
        assert numeric <= set(cls.RANGES), (cls.__name__, numeric - set(cls.RANGES))


def test_defaults_are_valid_and_unchanged():
    assert MotionOptions() == MotionOptions(lookahead_s=0.10, expressiveness=1.0, head_motion=1.0,
                                            blinks_per_minute=20.0, seed=0, drive="phones", lead_s=0.08,
                                            jaw_scale=0.65, pause_jaw=0.15)
    assert EncodeOptions() == EncodeOptions(crf=23, preset="veryfast", codec="libx264", workers=1, segment_s=2.0)
    assert SayOptions().size == 512 and SayOptions().fps == 25.0
    for cls in CLASSES:
        obj = cls()
        for name, rule in cls.RANGES.items():
            assert rule.allows(getattr(obj, name)), (cls.__name__, name)


@pytest.mark.parametrize("make, option, words", [
    (lambda: MotionOptions(head_motion=float("nan")), "MotionOptions.head_motion", ["nan", "0 ... 3"]),
    (lambda: MotionOptions(expressiveness=float("inf")), "MotionOptions.expressiveness", ["inf", "0 ... 3"]),
    (lambda: MotionOptions(head_motion=1e6), "MotionOptions.head_motion", ["1000000.0", "0 ... 3"]),
    (lambda: MotionOptions(seed=-1), "MotionOptions.seed", ["whole number"]),
    (lambda: MotionOptions(drive="jaw"), "MotionOptions.drive", ["phones, loudness"]),
    (lambda: EncodeOptions(crf=99), "EncodeOptions.crf", ["99", "0 ... 51"]),
    (lambda: EncodeOptions(crf=-5), "EncodeOptions.crf", ["-5", "0 ... 51"]),
    (lambda: EncodeOptions(preset="bogus"), "EncodeOptions.preset", ["veryfast", "placebo"]),
    (lambda: EncodeOptions(codec="no_such_codec"), "EncodeOptions.codec", ["encoder"]),
    (lambda: EncodeOptions(workers=0), "EncodeOptions.workers", ["1 ... 64"]),
    (lambda: RenderOptions(batch_frames=0), "RenderOptions.batch_frames", ["1 ... 1000"]),
    (lambda: SayOptions(size=511), "SayOptions.size", ["even", "64 ... 4096"]),
    (lambda: SayOptions(fps=float("nan")), "SayOptions.fps", ["1 ... 120"]),
    (lambda: SayOptions(workers=-1), "SayOptions.workers", ["0 ... 64"]),
    (lambda: StreamOptions(max_lead_s=float("nan")), "StreamOptions.max_lead_s", ["0 ... 10"]),
    (lambda: StreamOptions(max_buffer_s=float("inf")), "StreamOptions.max_buffer_s", ["above 0"]),
])
def test_out_of_range_is_one_clear_error(make, option, words):
    with pytest.raises(OptionError) as info:
        make()
    err = info.value
    assert isinstance(err, InputError) and isinstance(err, ValueError)  # CLI exit 2; a ValueError for Python
    text = str(err)
    assert "\n" not in text and text.startswith(option) and "must be" in text
    for w in words:
        assert w in text, (w, text)
    assert err.option == option


def test_for_flag_rewords_for_the_command_line():
    with pytest.raises(OptionError) as info:
        EncodeOptions(crf=99)
    assert str(info.value.for_flag("--crf")) == "--crf 99: must be a number in 0 ... 51."


def test_presets_and_codecs():
    for p in X264_PRESETS:
        EncodeOptions(preset=p)
    EncodeOptions(codec="mpeg4", preset="anything")  # other encoders ignore crf/preset


def test_range_and_choice_words():
    assert Range(64, 4096, "pixels", integer=True, step=2).describe() == "an even whole number in 64 ... 4096 pixels"
    assert Range(0, 3600, "s", lo_open=True).describe() == "a number above 0, at most 3600 s"
    assert Range(0, 1, hi_open=True).describe() == "a number from 0, below 1"
    assert Choice(("a", "b")).describe() == "one of a, b"
    r = Range(0, 10, integer=True)
    assert r.allows(np.int64(3)) and not r.allows(3.0) and not r.allows(True) and not r.allows("3")
    assert not Range(0, 2**70).allows(float("inf")) and Range(0, 2**70).allows(2**69)


def check_accepted_or_refused(cls, name, value, build=None):
    """Build ``cls`` with ``name=value``: either accepted (then in range) or an OptionError of
    one line naming the field. Returns the object or None."""
    try:
        obj = build(value) if build else cls(**{name: value})
    except OptionError as exc:
        text = str(exc)
        assert "\n" not in text and f"{cls.__name__}.{name}" in text and "must be" in text
        return None
    rule = cls.RANGES[name]
    assert rule.allows(getattr(obj, name))
    v = getattr(obj, name)
    assert v is None or isinstance(v, (int, np.integer)) or math.isfinite(v)
    return obj


@FAST
@given(field=st.sampled_from(ALL_FIELDS), value=ANY_NUMBER)
def test_any_number_for_any_field_is_accepted_in_range_or_refused(field, value):
    cls, name = field
    check_accepted_or_refused(cls, name, value)


@FAST
@given(field=st.sampled_from(numeric_fields(StreamOptions) + ["motion.lead_s", "motion.head_motion",
                                                               "encode.crf", "render.batch_frames"]),
       value=ANY_NUMBER)
def test_stream_options_through_check_options(field, value):
    """StreamOptions, through live.options.check_options as the live side calls it: a ValueError
    naming the field, or options that pass."""
    from facecast.live.options import check_options

    part, _, sub = field.partition(".")
    try:
        if sub:
            nested = {"motion": MotionOptions, "encode": EncodeOptions, "render": RenderOptions}[part]
            options = StreamOptions(**{part: nested(**{sub: value})})
        else:
            options = StreamOptions(**{part: value})
        check_options(options)
    except ValueError as exc:
        text = str(exc)
        assert "\n" not in text and (sub or part) in text
        return
    if sub:
        assert getattr(getattr(options, part), sub) == value
    else:
        v = getattr(options, part)
        assert v is None or isinstance(v, (int, np.integer)) or math.isfinite(v)


def _speech(n=50, fps=25.0):
    from facecast.types import PhoneSpan, Speech

    phones = tuple(PhoneSpan(p, i * 0.12, (i + 1) * 0.12) for i, p in enumerate("AA M IY B OW SIL AE".split()))
    energy = np.clip(np.sin(np.linspace(0, 9, n)) * 0.5 + 0.5, 0, 1).astype(np.float32)
    return Speech(phones, energy, energy > 0.3, fps, 0, ())


@settings(max_examples=40, deadline=None)
@given(field=st.sampled_from(numeric_fields(MotionOptions)), value=ANY_NUMBER)
def test_accepted_motion_options_give_sane_motion(field, value):
    """What MotionOptions accept drives the face within the renderer's valid range: finite
    parameters, mouth in its box, head turned at most ~15 degrees (1e6 used to shred the face,
    nan to give flat grey frames)."""
    from facecast.motion import MOTION_INDEX, MotionModel

    opts = check_accepted_or_refused(MotionOptions, field, value)
    if opts is None:
        return
    params = MotionModel(opts).frames(_speech()).params
    assert np.isfinite(params).all()
    head = params[:, MOTION_INDEX["head_yaw"]:MOTION_INDEX["head_roll"] + 1]
    assert np.abs(head).max() < 0.27  # radians
    assert params[:, :6].min() >= -1 - 1e-6 and params[:, :6].max() <= 1.2 + 1e-6  # float32
