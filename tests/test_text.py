"""facecast.text: validation of the text to speak, transcript words, guessed pronunciations."""

import pytest

from facecast.errors import InputError
from facecast.text import (MAX_TEXT_CHARS, acronyms, check_text, guess_pronunciation, normalise_text, speech_text,
                           transcript_words)


@pytest.mark.parametrize("text", ["", "   ", "?!...", None])
def test_empty_text_is_a_clear_error(text):
    with pytest.raises(InputError, match="text"):
        check_text(text)


def test_huge_text_is_refused_with_the_limit():
    with pytest.raises(InputError, match=f"{MAX_TEXT_CHARS:,}"):
        check_text("a" * 100_000)


def test_transcript_words_spell_out_numbers_symbols_and_accents():
    words = transcript_words("In 1984, the NSA paid $3.5 million & 21st-century café 1990s don’t 2005 100%")
    assert words == ["in", "nineteen", "eighty", "four", "the", "nsa", "paid", "three", "point", "five",
                     "million", "dollars", "and", "twenty", "first", "century", "cafe", "nineteen", "nineties", "don't",
                     "two", "thousand", "five", "one", "hundred", "percent"]
    assert transcript_words("?!... —") == []
    assert acronyms("The NSA and GPT-4 are not ABCDEFG or Us") == {"nsa", "gpt"}


def test_guessed_pronunciations():
    known = {"obama": "OW B AA M AH"}
    assert guess_pronunciation("obama's", known.get, False) == "OW B AA M AH Z".split()
    assert guess_pronunciation("nsa", known.get, True) == "EH N EH S EY".split()  # spelt: an acronym
    assert guess_pronunciation("xkcd", known.get, False) == "EH K S K EY S IY D IY".split()  # no vowel
    assert guess_pronunciation("knight", known.get, False) == "N AY T".split()
    assert guess_pronunciation("city", known.get, False) == "S IH T IY".split()
    assert guess_pronunciation("'", known.get, False) == []


# ---- bad and awkward text (issue #18) ----

@pytest.mark.parametrize("text, what", [("Hello \udcff world", "the byte 0xff at character 7"),
                                        ("Hi \ud83d there", "an unpaired surrogate U+D83D")])
def test_text_that_is_not_utf8_is_a_clear_error(text, what):
    """Bytes of another encoding in argv arrive as surrogate escapes; Piper's espeak bridge
    raised UnicodeEncodeError on them."""
    with pytest.raises(InputError) as info:
        check_text(text)
    msg = str(info.value)
    assert msg.startswith("--text:") and "UTF-8" in msg and what in msg


@pytest.mark.parametrize("text, script", [("你好，世界。今天天气很好。", "Chinese"), ("مرحبا بالعالم", "Arabic"),
                                          ("こんにちは、世界", "Japanese"), ("Привет, мир! Как дела?", "Cyrillic"),
                                          ("<speak>你好</speak>", "Chinese")])
def test_text_mostly_in_another_script_is_refused_naming_it(text, script):
    with pytest.raises(InputError) as info:
        speech_text(text)
    msg = str(info.value)
    assert msg.startswith("--text:") and script in msg and "English" in msg and "--audio" in msg


def test_a_few_foreign_letters_are_left_out_with_a_warning(caplog):
    assert speech_text("The word Привет means hello, and 你好 too.") == "The word means hello, and too."
    assert "Cyrillic" in caplog.text and "Chinese" in caplog.text and "Привет" in caplog.text
    caplog.clear()
    assert speech_text("Café naïve, 5 µs.") == "Café naïve, 5 µs."  # accents and the micro sign are not foreign
    assert caplog.text == ""


def test_ssml_tags_are_removed_not_read(caplog):
    text = ('<speak>Hello <break time="1s"/> there &amp; <sub alias="World Wide Web">WWW</sub>.'
            '<p>One</p><p>Two.</p></speak>')
    assert speech_text(text) == "Hello , there & World Wide Web. One. Two."
    assert "SSML" in caplog.text and "<break>" in caplog.text
    with pytest.raises(InputError, match="nothing is left"):
        speech_text("<speak><break/></speak>")
    assert speech_text("a < b and b > c") == "a < b and b > c"  # not markup


@pytest.mark.parametrize("text, spoken", [
    ("$3.5M", "three point five million dollars"),
    ("$5", "five dollars"), ("$1", "one dollar"), ("$0.99", "ninety nine cents"),
    ("$1,200", "one thousand two hundred dollars"), ("$2 billion", "two billion dollars"),
    ("£3.50", "three pounds and fifty pence"), ("€20", "twenty euros"), ("¥500", "five hundred yen"),
    ("2.5k users", "two point five thousand users"), ("1.2B", "one point two billion"),
    ("12/05/2026", "December fifth, twenty twenty six"), ("13/05/2026", "May thirteenth, twenty twenty six"),
    ("2026-05-12", "May twelfth, twenty twenty six"), ("1/2/2005", "January second, two thousand five"),
    ("3:30 pm", "three thirty P M"), ("3:05 PM", "three oh five P M"), ("15:45", "fifteen forty five"),
    ("3:00", "three o'clock"), ("at 9am.", "at nine A M."), ("at 9 a.m. we met", "at nine A M we met"),
    ("the 21st", "the twenty first"), ("the 2nd and 3rd", "the second and third"),
    ("5km and 4K video", "5km and 4K video"), ("in 1984", "in 1984"),  # units and plain numbers: the voice's
    ("99/99/2026", "99/99/2026"), ("25:61", "25:61"),  # not a date or a time
])
def test_normalise_text_speaks_currency_dates_times_and_ordinals(text, spoken):
    assert normalise_text(text) == spoken


def test_transcripts_use_the_same_normaliser():
    assert transcript_words("$3.5M on 12/05/2026 at 3:05 pm") == (
        "three point five million dollars on december fifth twenty twenty six at three oh five p m".split())
