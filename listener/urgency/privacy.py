"""Personal data posted in public: find it by kind, never keep the value.

When a member posts their phone number, e-mail address, IBAN, library card number or PIN, or
a street address, the team must move the conversation to a private channel. `find` returns the
kinds and where they are (for `mask`); the score's reason names only the kind:
"privacy: phone number posted publicly +40".

- phone numbers: the `phonenumbers` library (Google's libphonenumber), which knows which Dutch
  and Belgian numbers can exist; numbers without a country code are read as the settings'
  region (NL), '+32 …' as Belgian. Years, times, dates, prices and ISBNs are not valid numbers.
- e-mail addresses, except an organisation's public mailboxes (info@, klantenservice@, …) and
  Mastodon handles ('@bieb@mastodon.nl');
- IBANs, checked with mod-97, so a random string of capitals and digits is not one;
- a library card number: 6 to 14 digits (spaces allowed) right after 'pas', 'pasnummer',
  'lenerspas', …; a PIN: 4 to 6 digits right after 'pincode' or 'pin';
- a street address: a street name (…straat, …laan, …weg, …) with a house number and then a
  postcode or a town; a house number alone, or a street without one, is not personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from listener.urgency.settings import PrivacySettings, default_settings

PHONE = "phone number"
EMAIL = "e-mail address"
IBAN = "IBAN"
CARD = "library card number"
PIN = "PIN code"
ADDRESS = "street address"

_EMAIL = re.compile(r"(?<![\w.+@-])([\w.+-]+)@([\w-]+(?:\.[\w-]+)*\.[a-z]{2,})\b", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_STREET_SUFFIX = (
    r"(?:straat|laan|weg|plein|gracht|kade|singel|dijk|steeg|hof|dreef|pad|markt|ring|baan|"
    r"park|veld|erf|wal|burcht|street|road|lane|avenue)"
)
_ADDRESS = re.compile(
    rf"\b[A-Z][\w'-]*{_STREET_SUFFIX}\s+\d{{1,4}}(?:\s?[a-zA-Z](?![a-zA-Z]))?"
    r"(?:-\d{1,4})?,?\s+(?:\d{4}\s?[A-Z]{2}\b|[A-Z][a-z]{2,})",
)
_POSTCODE_ADDRESS = re.compile(
    r"\b\d{4}\s?[A-Z]{2}\s+\d{1,4}[a-z]?\b|\b\d{1,4}[a-z]?,?\s+\d{4}\s?[A-Z]{2}\b"
)
_DIGIT = re.compile(r"\d")
_NUMBER = r"(\d(?:[ .-]?\d){%d,%d})(?![\d,.:]?\d)"


@dataclass(frozen=True, slots=True)
class Found:
    kind: str
    start: int
    end: int


def find(text: str, settings: PrivacySettings | None = None) -> list[Found]:
    """Every piece of personal data in the text, by kind and position, in text order."""
    if "@" not in text and _DIGIT.search(text) is None:
        return []  # every kind but an e-mail address has digits (any script's: phonenumbers)
    settings = settings or default_settings().privacy
    found: list[Found] = []
    found += _phones(text, settings.region)
    found += _emails(text, settings.public_mailboxes)
    found += _ibans(text)
    found += _after_words(text, settings.card_words, CARD, 6, 14)
    found += _after_words(text, settings.pin_words, PIN, 4, 6)
    found += [Found(ADDRESS, m.start(), m.end()) for m in _ADDRESS.finditer(text)]
    found += [Found(ADDRESS, m.start(), m.end()) for m in _POSTCODE_ADDRESS.finditer(text)]
    return _without_overlaps(found)


def kinds(text: str, settings: PrivacySettings | None = None) -> list[str]:
    """The kinds of personal data in the text, each once, in text order."""
    return list(dict.fromkeys(f.kind for f in find(text, settings)))


def mask(text: str, settings: PrivacySettings | None = None) -> str:
    """The text with every value found replaced by its kind: '[phone number]'."""
    out = text
    for item in sorted(find(text, settings), key=lambda f: f.start, reverse=True):
        out = f"{out[: item.start]}[{item.kind}]{out[item.end :]}"
    return out


def _phones(text: str, region: str) -> Iterable[Found]:
    if len(_DIGIT.findall(text)) < fewest_phone_digits(region):
        return  # too few digits for any valid number: the matcher would find none
    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    for match in matcher:
        yield Found(PHONE, match.start, match.end)


@lru_cache(maxsize=8)
def fewest_phone_digits(region: str) -> int:
    """The fewest digits a valid phone number can be written with, read as `region` does: a
    national number of that region, or any region's with its country code. The matcher reads
    digits only (no vanity letters), and a number is valid only at one of its region's
    possible lengths."""
    lengths = []
    for metadata in [
        *map(phonenumbers.PhoneMetadata.metadata_for_region, phonenumbers.SUPPORTED_REGIONS),
        *map(
            phonenumbers.PhoneMetadata.metadata_for_nongeo_region,
            phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS,
        ),
    ]:
        if metadata is None or metadata.general_desc is None:
            continue
        possible = [n for n in metadata.general_desc.possible_length if n > 0]
        if possible:
            lengths.append(min(possible) + len(str(metadata.country_code)))
            if metadata.id == region:
                lengths.append(min(possible))
    return min(lengths, default=1)


def _emails(text: str, public: list[str]) -> Iterable[Found]:
    if "@" not in text:
        return  # the pattern needs one; most texts have none
    mailboxes = {p.lower() for p in public}
    for m in _EMAIL.finditer(text):
        if m.group(1).lower() not in mailboxes:
            yield Found(EMAIL, m.start(), m.end())


def _ibans(text: str) -> Iterable[Found]:
    for m in _IBAN.finditer(text):
        if iban_valid(m.group(0)):
            yield Found(IBAN, m.start(), m.end())


def iban_valid(value: str) -> bool:
    """The IBAN check: move the first four characters to the end, letters to numbers, mod 97."""
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


@lru_cache(maxsize=64)
def _after_pattern(words: tuple[str, ...], least: int, most: int) -> re.Pattern[str]:
    names = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(
        rf"\b(?:{names})\b(?:\W+(?:is|was|nummer|nr|number|:)){{0,2}}\W+"
        + _NUMBER % (least - 1, most - 1),
        re.IGNORECASE,
    )


def _after_words(text: str, words: list[str], kind: str, least: int, most: int) -> Iterable[Found]:
    """A number of `least`-`most` digits within a few words after one of `words`."""
    if not words:
        return
    for m in _after_pattern(tuple(words), least, most).finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        if least <= len(digits) <= most:
            yield Found(kind, m.start(1), m.end(1))


def _without_overlaps(found: list[Found]) -> list[Found]:
    out: list[Found] = []
    for item in sorted(found, key=lambda f: (f.start, -(f.end - f.start))):
        if out and item.start < out[-1].end:
            continue
        out.append(item)
    return out
