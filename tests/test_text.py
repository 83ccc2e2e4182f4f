"""facecast.text: validation of the text to speak, transcript words, guessed pronunciations."""

import pytest

from facecast.errors import InputError
from facecast.text import MAX_TEXT_CHARS, acronyms, check_text, guess_pronunciation, transcript_words


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
                     "million", "and", "twenty", "first", "century", "cafe", "nineteen", "nineties", "don't",
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
