"""facecast.show.words and .subtitles: written words on the voice's word times, cues, SRT/VTT."""

from __future__ import annotations

import pytest
import torch

from facecast.errors import OutputError
from facecast.show.subtitles import SubtitleFiles, TextOverlay, srt_cue, subtitle_paths, vtt_cue
from facecast.show.words import CUE_CHARS, Cue, TimedWord, make_cues, take_cues, transcript_tokens, word_times
from facecast.voice import SpokenWord, default_voice, spoken_words


def spoken(*spec):
    """SpokenWords from (phonemes, start, seconds per phoneme)."""
    out = []
    for ph, start, per in spec:
        out.append(SpokenWord(ph, tuple((start + i * per, start + (i + 1) * per) for i in range(len(ph)))))
    return out


def test_one_to_one_when_the_counts_match():
    words = spoken(("hɛloʊ", 0.1, 0.05), ("ðɛɹ", 0.5, 0.05))
    got = word_times("Hello there.", words)
    assert [(w.text, w.start, w.end) for w in got] == [("Hello", 0.1, words[0].end), ("there.", 0.5, words[1].end)]


def test_a_written_word_read_as_several_takes_their_span():
    # "$3.5M" is read as five words: the written word spans all five.
    words = spoken(("ɪt", 0.0, 0.05), ("kɔsts", 0.2, 0.05), ("θɹi", 0.6, 0.05), ("pɔɪnt", 0.8, 0.05),
                   ("faɪv", 1.1, 0.05), ("mɪliən", 1.4, 0.05), ("dɑlɚz", 1.8, 0.05))
    got = word_times("It costs $3.5M", words)
    assert [w.text for w in got] == ["It", "costs", "$3.5M"]
    assert got[2].start == 0.6 and got[2].end == words[-1].end


def test_joined_words_share_the_voice_word_and_stay_on_phonemes():
    # espeak says "of the" as one word: three voice words for four written ones.
    words = spoken(("ʌvðə", 0.0, 0.05), ("toʊɾəl", 0.3, 0.06), ("nˈaʊ", 0.8, 0.05))
    got = word_times("of the total now", words)
    assert [w.text for w in got] == ["of", "the", "total", "now"]
    phones = [t for w in words for t in w.times]
    for w in got:
        assert any(abs(w.start - a) < 1e-9 for a, _ in phones) and any(abs(w.end - b) < 1e-9 for _, b in phones)
        assert w.end > w.start
    assert all(a.end <= b.start + 1e-9 for a, b in zip(got, got[1:]))
    assert got[2].start == 0.3  # "total" starts on the voice's word gap


def test_real_voice_word_times_lie_inside_the_speech():
    text = "Thanks, Ana. It costs $3.5M in 2026, of the total."
    voice = default_voice()
    for sentence in ("Thanks, Ana.", "It costs $3.5M in 2026, of the total."):
        said = list(voice.synthesize(sentence))
        got = word_times(sentence, [w for s in said for w in s.words])
        assert " ".join(w.text for w in got) == sentence
        speech = [(p.start, p.end) for s in said for p in s.phones if p.phone != "SIL"]
        lo, hi = speech[0][0], speech[-1][1]
        for w in got:
            assert lo - 1e-6 <= w.start < w.end <= hi + 1e-6, (w, lo, hi)
            # the word's middle is on a spoken (not silent) phone
            mid = (w.start + w.end) / 2
            assert any(a <= mid <= b for a, b in speech) or w.end - w.start < 0.15, w
        assert all(a.end <= b.start + 1e-6 for a, b in zip(got, got[1:]))
    assert text


def test_spoken_words_from_alignments():
    pairs = [("^", 10), ("h", 100), ("ˈ", 20), ("ɛ", 100), ("l", 100), ("oʊ", 100), (" ", 50), ("j", 100),
             ("ː", 30), (".", 200), ("$", 10)]
    words = spoken_words(pairs, 1000, 1.0)
    assert [w.phonemes for w in words] == ["hɛloʊ", "j"]
    assert words[0].start == pytest.approx(1.01) and words[0].end == pytest.approx(1.43)
    assert words[0].times[1][0] == pytest.approx(1.11)  # the stress mark's time goes to the vowel
    assert words[1].end == pytest.approx(1.61)  # the length mark's time to the phoneme before


def test_cues_are_short_and_keep_word_times():
    words = [TimedWord(f"word{i},", i * 0.3, i * 0.3 + 0.25) for i in range(30)]
    cues = make_cues(words, "ANA")
    assert [w for c in cues for w in c.words] == words
    assert all(len(c.text) <= CUE_CHARS for c in cues)
    assert all(c.start == c.words[0].start and c.end == c.words[-1].end for c in cues)


def test_take_cues_break_at_sentences_or_at_pauses_when_recognised():
    words = [TimedWord(t, 2.0 + i, 2.5 + i) for i, t in enumerate("Hi there. How are you?".split())]
    cues = take_cues(words, "BEN")
    assert [c.text for c in cues] == ["Hi there.", "How are you?"] and not any(c.recognised for c in cues)
    heard = [TimedWord("hi", 0.0, 0.3), TimedWord("there", 0.35, 0.6), TimedWord("how", 1.5, 1.7),
             TimedWord("are", 1.75, 1.9)]
    cues = take_cues(heard, "BEN", recognised=True)
    assert [c.text for c in cues] == ["hi there", "how are"] and all(c.recognised for c in cues)
    assert srt_cue(1, cues[0]).endswith("<i>hi there</i>\n\n")
    assert "<v BEN><c.recognised>hi <00:00:00.350>there</c>" in vtt_cue(cues[0])


def test_transcript_tokens_carry_the_words_they_are_said_as():
    assert transcript_tokens("Pay $5 now - ok?") == [("Pay", ["pay"]), ("$5", ["five", "dollars"]),
                                                     ("now -", ["now"]), ("ok?", ["ok"])]


def test_srt_and_vtt_text():
    cue = Cue((TimedWord("Hello", 61.5, 62.0), TimedWord("<there>", 62.1, 62.6)), "ANA")
    assert srt_cue(3, cue) == "3\n00:01:01,500 --> 00:01:02,600\nHello <there>\n\n"
    assert vtt_cue(cue) == "00:01:01.500 --> 00:01:02.600\n<v ANA>Hello <00:01:02.100>&lt;there&gt;\n\n"


def test_subtitle_files_appear_only_on_close(tmp_path):
    paths = subtitle_paths(tmp_path / "show.mp4", "both")
    assert paths == [tmp_path / "show.srt", tmp_path / "show.vtt"]
    cue = Cue((TimedWord("Hi", 0.0, 0.4),), "ANA")
    files = SubtitleFiles(paths)
    files.write(cue)
    assert not any(p.exists() for p in paths)
    files.close()
    assert (tmp_path / "show.srt").read_text().startswith("1\n00:00:00,000 --> 00:00:00,400\nHi")
    assert (tmp_path / "show.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000")
    files = SubtitleFiles([tmp_path / "other.srt"])
    files.write(cue)
    files.abort()
    assert not (tmp_path / "other.srt").exists() and not list(tmp_path.glob(".*partial*"))


def test_subtitle_file_may_not_be_an_input(tmp_path):
    script = tmp_path / "show.srt"
    script.write_text("x")
    with pytest.raises(OutputError, match="script input"):
        SubtitleFiles([script], inputs=[("script", script)])
    with pytest.raises(OutputError, match="does not exist"):
        SubtitleFiles([tmp_path / "no" / "show.srt"])


def test_text_overlay_draws_inside_the_frame():
    frames = torch.zeros(2, 90, 160, 3, dtype=torch.uint8)
    o = TextOverlay("Hello there", 160, 90)
    o.paste(frames, 150, 80)  # partly outside: clipped, no error
    o.paste(frames, 10, 10)
    w, h = o.size
    assert frames[:, 10:10 + h, 10:10 + w].float().mean() > 5  # white text on the dark box
    assert frames[0].equal(frames[1])
