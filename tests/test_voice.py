"""Voice: the bundled Piper voice and its phone timeline."""

import pytest

from facecast.voice import PiperVoice, ipa_to_phones


def test_ipa_mapping_merges_stress_and_length_into_the_phone():
    spans = ipa_to_phones([("^", 100), ("m", 100), ("ˈ", 100), ("u", 100), ("ː", 100), (".", 100)], 1000, 0.0)
    assert [s.phone for s in spans] == ["SIL", "M", "UW", "SIL"]
    uw = spans[2]
    assert uw.start == pytest.approx(0.2) and uw.end == pytest.approx(0.5)
    assert spans[-1].end == pytest.approx(0.6)


@pytest.fixture(scope="module")
def voice():
    return PiperVoice()


def test_bundled_voice_loads_offline_and_times_phones_exactly(voice):
    sentences = list(voice.synthesize("Moo boo pea. Five vans!"))
    assert len(sentences) == 2
    t = 0.0
    for s in sentences:
        assert s.audio.start == pytest.approx(t)
        assert s.phones[0].start == pytest.approx(t, abs=1e-6)
        assert s.phones[-1].end == pytest.approx(s.audio.end, abs=1e-3)
        t = s.audio.end
    phones = [p.phone for p in sentences[0].phones]
    assert "M" in phones and "B" in phones and "P" in phones and "UW" in phones
    assert "F" in [p.phone for p in sentences[1].phones]
    assert sentences[0].audio.sample_rate == 22050
    assert abs(sentences[0].audio.samples).max() > 0.3
