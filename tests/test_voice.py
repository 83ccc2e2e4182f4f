"""Voice: the bundled Piper voice and its phone timeline."""

import pytest

from facecast.errors import InputError
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


def test_the_voice_reads_normalised_text_not_symbols(voice):
    """Currency, dates, times, SSML and stray foreign letters are made speakable before Piper:
    it read "$3.5M" as "dollar three point five M", "12/05/2026" with "slash", SSML tags aloud,
    and Chinese as "Chinese letter ..."."""
    def phonemes(text):
        return " ".join(s.text for s in voice.synthesize(text))

    assert phonemes("It cost $3.5M on 12/05/2026.") == phonemes(
        "It cost three point five million dollars on December fifth, twenty twenty six.")
    assert phonemes("<speak>Hello there.</speak>") == phonemes("Hello there.")
    assert phonemes("Hello 你好 there.") == phonemes("Hello there.")
    with pytest.raises(InputError, match="Chinese"):
        list(voice.synthesize("你好，世界。"))
    with pytest.raises(InputError, match="UTF-8"):
        list(voice.synthesize("Hello \udcff world"))
