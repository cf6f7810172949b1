"""Labels from the urgency lexicon: each label in Dutch and English, negation, intensifiers,
sarcasm, closures with a schedule, spam by two cues."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.post import Post
from listener.urgency.labels import Lexicon
from listener.urgency.settings import default_settings

LEXICON = Lexicon(default_settings())


def labels(text: str, source: str = "bluesky") -> list[str]:
    return LEXICON.label(Post("p", source, text, datetime(2026, 11, 20, tzinfo=UTC))).labels


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Ik ben echt teleurgesteld in de bieb", "complaint"),
        ("The library staff were so rude, unacceptable", "complaint"),
        ("Weet iemand hoe laat de bieb opengaat?", "question"),
        ("Does anyone know when the library opens", "question"),
        ("Wat een fijne bieb, dank jullie wel 💚", "praise"),
        ("The library is so cozy, love it", "praise"),
        ("De wifi in de bieb doet het weer niet", "outage"),
        ("The library app is not working since this morning", "outage"),
        ("Brandalarm in de bieb, iedereen staat buiten", "safety"),
        ("A man assaulted a librarian, police are there", "safety"),
        ("De bieb mailde mij met 300 leden in de cc, een datalek", "privacy"),
        ("The library emailed my data to someone else: a data breach", "privacy"),
        ("Bieb Eemland verloot 100 abonnementen, klik hier 👉 bit.ly/x", "spam"),
        ("Crypto library airdrop 🚀 join now", "spam"),
        ("Zaterdag een lezing over de Domtoren in de bieb", "event"),
        ("Workshop and book club at the library tonight", "event"),
        ("Bibliotheek Leusden krijgt een nieuwe jeugdafdeling", "news"),
        ("Lees net dat de bieb stopt met de bibliobus", "news"),
    ],
)
def test_each_label_in_dutch_and_english(text: str, label: str) -> None:
    source = "rss" if text.startswith("Bibliotheek Leusden krijgt") else "bluesky"
    assert label in labels(text, source)


def test_a_question_opener_counts_only_where_it_opens_a_sentence() -> None:
    assert labels("Kan ik morgen mijn boeken ophalen") == ["question"]
    assert "question" not in labels("Ik weet niet hoe ik dat moet vinden")


def test_negated_praise_is_a_complaint() -> None:
    assert labels("Ik ben niet blij met de nieuwe openingstijden") == ["complaint"]
    assert labels("the new opening hours are not great") == ["complaint"]


def test_a_negated_complaint_or_outage_is_neither() -> None:
    assert labels("geen probleem hoor, ik kom morgen wel") == []
    assert "outage" not in labels("de bieb is gelukkig niet dicht")


def test_a_closure_with_a_schedule_is_not_an_outage() -> None:
    assert "outage" not in labels("Bieb dicht om 18u op vrijdag? Serieus?")
    assert "outage" not in labels("de bieb in Ugchelen is op vrijdag dicht")
    assert "outage" in labels("de bieb is vandaag zomaar dicht")


def test_sarcasm_is_not_praise_but_a_complaint() -> None:
    assert labels("Nou top, de bieb heeft alle kranten weggegooid") == ["complaint"]
    assert labels("Lekker dan, de bieb") == ["complaint"]
    assert labels("de bieb sluit om 17u op zaterdag, really? 🙃") == ["complaint", "question"]


def test_praise_beside_a_complaint_is_not_praise() -> None:
    assert labels("super irritant dat de printer weer kapot is") == ["outage", "complaint"]


@pytest.mark.parametrize(
    ("text", "intensifier"),
    [
        ("de bieb is echt slecht", "'echt' before 'slecht'"),
        ("de bieb is ALWEER dicht", "'ALWEER' in capitals"),
        ("de bieb is wéér dicht", "'wéér' with emphasis"),
        ("de wifi is kapot!!!", "'!!!'"),
    ],
)
def test_intensifiers_are_found_on_a_complaint_or_outage(text: str, intensifier: str) -> None:
    post = Post("p", "x", text, datetime(2026, 11, 20, tzinfo=UTC))
    assert intensifier in LEXICON.label(post).intensifiers


def test_intensifiers_need_a_complaint_or_outage() -> None:
    post = Post("p", "x", "SUPER leuke bieb!!!", datetime(2026, 11, 20, tzinfo=UTC))
    assert LEXICON.label(post).intensifiers == []


def test_spam_needs_two_cues() -> None:
    assert "spam" not in labels("Gratis krant lezen in de bieb, alleen vandaag")
    assert "spam" in labels("Volg mij en ik volg terug #bieb #boeken #lezen #bibliotheek")


def test_a_long_word_with_one_typo_still_counts_but_a_common_word_does_not() -> None:
    assert "complaint" in labels("ik ben zo teleurgestelt in de bieb")
    assert "safety" not in labels("de bieb is echt een toeristenattractie geworden")


def _find_reference(phrases, words):
    """The straightforward `_find`: every phrase at every position."""
    from listener.urgency.labels import _Hit, _typo_of

    hits = []
    for shown, phrase in phrases:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if words[i : i + n] == phrase or (n == 1 and _typo_of(words[i], phrase[0])):
                hits.append(_Hit(shown, i, i + n))
                break
    return hits


def test_the_indexed_phrase_search_finds_what_the_straightforward_one_does() -> None:
    import random

    from listener.urgency.labels import _compile, _find

    phrases = _compile(
        ["teleurgesteld", "slecht", "niet open", "de bieb is dicht", "onbeschoft", "schandalig"]
    )
    vocabulary = [
        "teleurgesteld", "teleurgestelt", "teleurgesteldd", "tleurgesteld", "slecht", "niet",
        "open", "de", "bieb", "is", "dicht", "onbeschoft", "onbeschofd", "schandalig",
        "schandaalig", "geworden", "gewonden", "en", "weer",
    ]  # fmt: skip
    rng = random.Random(7)
    for _ in range(3000):
        words = tuple(rng.choice(vocabulary) for _ in range(rng.randint(0, 12)))
        assert _find(phrases, words) == _find_reference(phrases, words), words


URLISH = "abc .:/-_wWhHtTpPsSnNlLyYmMeEcCoOiI019é"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(URLISH), max_size=40) | st.text(max_size=40))
def test_links_are_left_out_of_the_text_as_the_full_pattern_would(text: str) -> None:
    from listener.urgency.labels import _URL, _without_urls

    assert _without_urls(text) == _URL.sub(" ", text)
