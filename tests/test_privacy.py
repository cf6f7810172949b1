"""Personal data posted in public: found by kind, ordinary numbers left alone, never echoed."""

from __future__ import annotations

from datetime import UTC, datetime

import phonenumbers
import pytest

from listener.post import Post
from listener.urgency.privacy import _phones, fewest_phone_digits, iban_valid, kinds, mask
from listener.urgency.score import score_post


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("bel me op 06-12345678", "phone number"),
        ("mijn nummer: +31 6 1234 5678", "phone number"),
        ("call me on +32 470 12 34 56", "phone number"),
        ("mijn mail is jan.jansen@example.nl", "e-mail address"),
        ("maak het over naar NL91 ABNA 0417 1643 00", "IBAN"),
        ("mijn pasnummer is 2090 4412 8831", "library card number"),
        ("lenerspas 20904412883", "library card number"),
        ("en mijn pincode 4471", "PIN code"),
        ("ik woon op Dorpsstraat 12, 3832 AB Leusden", "street address"),
        ("stuur het naar Kerkweg 4a Amersfoort", "street address"),
    ],
)
def test_each_kind_is_found(text: str, kind: str) -> None:
    assert kinds(text) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "de bieb bestaat sinds 1975 en in 2026 gaat hij verbouwen",
        "open van 10:00-17:00, op zaterdag 10:00 - 14:00",
        "ISBN 978-90-234-5678-9 is binnen",
        "ISBN 9789023456789",
        "ik woon op nummer 12",
        "de bieb aan de Vosselmanstraat is mooi",
        "op 12-11-2026 om 14.30 uur",
        "de boete is € 12,50 of 1.250 punten",
        "Bibliotheek Eemland heeft 120000 boeken",
        "NL91 ABNA 0417 1643 01 is geen geldig rekeningnummer",
        "mail naar info@bibliotheekeemland.nl",
        "@bibliotheekeemland@mastodon.nl wat een mooie expo",
        "OBA pas met 90% korting",
    ],
)
def test_ordinary_numbers_are_not_personal_data(text: str) -> None:
    assert kinds(text) == []


def test_iban_is_checked_with_mod_97() -> None:
    assert iban_valid("NL91ABNA0417164300")
    assert not iban_valid("NL91ABNA0417164301")


def test_mask_replaces_values_with_their_kind() -> None:
    text = "bel 06-12345678 of mail jan@example.nl, pas 2090 4412 8831"
    assert mask(text) == "bel [phone number] of mail [e-mail address], pas [library card number]"


def test_the_value_never_appears_in_reasons() -> None:
    post = Post("p", "x", "Bieb help, pasnummer 2090 4412 8831 pincode 4471", datetime.now(UTC))
    urgency = score_post(post)
    joined = " ".join(urgency.reasons)
    assert "privacy" in urgency.labels
    assert "library card number and PIN code posted publicly" in joined
    assert "2090" not in joined and "4471" not in joined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bel me op ０６１２３４５６７８", ["phone number"]),  # digits of another width
        ("bel me op ٠٦١٢٣٤٥٦٧٨", ["phone number"]),  # Arabic-Indic digits
        ("mail me: jan.jansen@example.nl", ["e-mail address"]),  # no digit at all
        ("geen cijfers, geen adres, niets", []),
    ],
)
def test_digits_of_any_script_and_digitless_addresses_are_still_read(
    text: str, expected: list[str]
) -> None:
    assert kinds(text) == expected


def _written_numbers() -> list[str]:
    """Every region's example number, international and national, and each shortened by up to
    four characters (fewer digits than a valid number may have)."""
    formats = (
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    )
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        number = phonenumbers.example_number(region)
        if number is None:
            continue
        for form in formats:
            written = phonenumbers.format_number(number, form)
            out += [f"bel {written[: len(written) - cut]} aub" for cut in range(5)]
    return out


@pytest.mark.parametrize("region", ["NL", "BE"])
def test_too_few_digits_for_a_phone_number_skips_only_texts_the_matcher_finds_nothing_in(
    region: str,
) -> None:
    """`_phones` skips the matcher below `fewest_phone_digits`: over every region's example
    number, whole and shortened, it finds exactly what the matcher finds."""
    leniency = phonenumbers.Leniency.VALID
    texts = _written_numbers()
    skipped = 0
    for text in texts:
        expected = [
            (m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)
        ]
        assert [(f.start, f.end) for f in _phones(text, region)] == expected, text
        skipped += sum(ch.isdigit() for ch in text) < fewest_phone_digits(region)
    assert skipped > 0 and len(texts) > 1000  # the skip was taken, and numbers were found
