"""A deterministic workload of replay posts for the multi-instance tests and `bench/scale.py`.

    from tests.support import workload

    posts = workload.posts(1000)                          # the same 1,000 posts for the same seed
    files = workload.write(folder / "posts", 1000, 4)     # posts-00.jsonl … posts-03.jsonl
    expected = workload.expected_alerts(config, posts)    # post id → organisation, decided by
                                                          # listener's own classifier

The posts are canonical post JSON lines, as `listener.post.Post.to_dict` writes them, with
real-looking Dutch texts built from fragments: about a third mention a library, mostly the
organisations and branches of the repository's example queries (Bibliotheek Eemland with
Amersfoort, Leusden and Hooglanderveen; CODA Apeldoorn with its branches; the local "de bieb"
search), by name, alias, handle, branch building, a town in the text, the author's profile
location or the post's coordinates; some use another sense of the word ("Steam-bibliotheek",
"Python library", "The Midnight Library"), a library outside every branch area (Zwolle), a
vacancy (excluded) or the organisation's own account. The rest is everyday chatter, some of it
naming the same towns. Nothing here says which posts alert: `expected_alerts` asks
`listener.pipeline.Classifier` over the same config, so the tests follow the classifier.

`write` splits N posts over K files round-robin (post i goes to file i mod K), so every file
spans the whole period, like K feeds read side by side; each file keeps its posts in time order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from listener.post import Author, Engagement, Geo, Post

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday morning, before opening time
SOURCES = ("bluesky", "mastodon", "x")

FIRST_NAMES = (
    "marieke", "joost", "sanne", "pieter", "fatima", "daan", "lotte", "mohamed", "anouk",
    "bram", "esther", "thijs", "yara", "ruben", "ilse", "kees", "noor", "sem", "femke", "jeroen",
    "priya", "wouter", "linda", "ahmed", "mirjam", "stijn", "eva", "hans", "iris", "tom",
)  # fmt: skip

# The library a post is about, as people write it (lower case; capitalised at a sentence start).
LIBRARY_REFERENCES = (
    "Bibliotheek Eemland",
    "Bieb Eemland",
    "@bibliotheekeemland",
    "de Bibliotheek Amersfoort",
    "het Eemhuis",
    "de bieb in Leusden",
    "de bieb in Leusen",  # a typo of Leusden
    "de bibliotheek in Amersfoort",
    "de bieb van Amersfoort",
    "de bieb in Hooglanderveen",
    "CODA Apeldoorn",
    "bieb CODA",
    "de CODA bibliotheek",
    "de bieb in Apeldoorn",
    "de bieb in Ugchelen",
    "de bibliotheek in Ugchelen",
)

# "de bieb" without a place: it counts only when the profile or the coordinates place it.
PLACELESS_REFERENCES = ("de bieb", "de bibliotheek")
PROFILE_PLACES = (
    "Leusden", "Amersfoort", "Amersfoort, NL", "📍 Amersfoort", "Hooglanderveen", "Apeldoorn",
    "Utrecht", "Zwolle", "he/him 🌈", "Nederland",
)  # fmt: skip
# Points inside branch areas (and a few far away: no branch there).
POINTS = (
    (52.1552, 5.3869),
    (52.1330, 5.4300),
    (52.1880, 5.4290),
    (52.2150, 5.9590),
    (52.1860, 5.9430),
    (51.9225, 4.4792),
    (52.5168, 6.0830),
)

# {lib}: a library reference. Grouped loosely by what they are about; the classifier decides.
LIBRARY_TEMPLATES = (
    "{Lib} is wéér dicht 😡 stond voor niks voor de deur",
    "{Lib} is vandaag dicht vanwege een stroomstoring, wifi doet het ook niet",
    "Weet iemand hoe laat {lib} vandaag opengaat?",
    "Is {lib} op zondag eigenlijk open?",
    "Kan ik bij {lib} ook een e-reader lenen?",
    "Heerlijke middag bij {lib}, dank aan de vrijwilligers van het taalcafé! 💚",
    "{Lib} heeft echt de fijnste leesplekken, lekker rustig studeren",
    "Bij {lib} zijn alle computers kapot, al een week",
    "De printer bij {lib} doet het weer eens niet 🙄",
    "Al drie weken wachten op mijn reservering bij {lib}",
    "Vijf euro boete bij {lib} voor één dag te laat, serieus?",
    "{Lib} organiseert donderdag een lezing over de Eem",
    "Zaterdag boekenmarkt bij {lib}, kom langs!",
    "Voorleesochtend bij {lib} was een groot succes, de kinderen genoten",
    "Mijn pas doet het niet bij {lib}, wie kan me helpen?",
    "Bij {lib} werd net iemand bedreigd door een man, politie is ter plaatse",
    "Nieuwe openingstijden bij {lib} vanaf januari",
    "{Lib} heeft een repair café op woensdag, top initiatief",
    "Met de kinderen naar {lib}, ze willen alle strips lenen",
    "Waarom is de wifi bij {lib} zo traag?",
)

# Another sense of the word, a library outside every area, a vacancy: no alert expected, but
# the classifier decides.
OTHER_SENSE_TEXTS = (
    "Mijn hele Steam-bibliotheek is weg na de update, wat een ellende",
    "Welke Python library gebruiken jullie voor het parsen van TOML?",
    "Mijn Spotify bibliotheek is ineens helemaal leeg",
    "Foto's kwijt uit mijn Lightroom-bibliotheek, iemand een tip?",
    "Opa's bibliotheek staat vol met oude atlassen",
    "Net The Midnight Library uitgelezen, wat een boek",
    "De bieb in Zwolle heeft echt de fijnste leesplekken",
    "Naar de bibliotheek in Groningen geweest, wat een gebouw is het Forum",
    "Vacature bij Bibliotheek Eemland: medewerker klantenservice",
    "Mijn iCloud-bibliotheek zit alweer vol",
    "De bibliotheek van Alexandrië blijft tot de verbeelding spreken",
    "Mijn GOG library is groter dan mijn backlog aankan",
)

OWN_ACCOUNT_TEXTS = (
    "Zaterdag boekenmarkt in het Eemhuis! Kom langs 📚",
    "Bibliotheek Eemland is op 25 december gesloten. Fijne feestdagen!",
)

CHATTER_TEMPLATES = (
    "De trein naar Utrecht heeft weer eens twintig minuten vertraging",
    "Wat een regen vandaag in {town}",
    "Iemand tips voor een goede pizzeria in {town}?",
    "Eindelijk de verwarming laten repareren, scheelt weer",
    "Zaterdag markt in {town}, lekker druk",
    "Ajax speelt vanavond weer beroerd",
    "Net de kinderen naar school gebracht, fiets lek natuurlijk",
    "Nieuwe koffiezaak in {town} is echt een aanrader",
    "Waarom staat de A28 bij {town} elke ochtend vast?",
    "Vandaag eindelijk mijn rijbewijs gehaald!",
    "Het park in {town} ligt vol bladeren, prachtig in de herfst",
    "Wie gaat er mee naar de film vanavond?",
    "Mijn buurman is alweer aan het boren, op zondag",
    "Goed boek gelezen over de Tweede Wereldoorlog, aanrader",
    "De gemeente {town} gaat de parkeertarieven weer verhogen",
    "Stroomstoring in {town}, hele wijk zit in het donker",
    "Kinderboerderij in {town} heeft nieuwe geitjes 🐐",
    "Drie uur in de rij voor het gemeentehuis, belachelijk",
)
TOWNS = ("Amersfoort", "Leusden", "Apeldoorn", "Utrecht", "Zwolle", "Rotterdam", "Ugchelen")
ENDINGS = ("", "", "", " 😡", " 💚", " 🙄", "!", " echt waar", " 😅")
LIBRARY_ENDINGS = (*ENDINGS, " #bieb", " #bibliotheek")


def posts(count: int, *, seed: int = 8, library_share: float = 0.35) -> list[Post]:
    """`count` posts, the same ones for the same arguments, oldest first.

    `library_share` of them mention a library (in-area, placeless, other senses and the like);
    the rest are everyday chatter."""
    rng = random.Random(seed)
    authors = _authors(rng)
    made: list[Post] = []
    moment = START
    for i in range(count):
        moment += timedelta(seconds=rng.randint(2, 9))
        source = SOURCES[rng.randrange(len(SOURCES))]
        author = authors[source][rng.randrange(len(authors[source]))]
        geo: Geo | None = None
        if rng.random() < library_share:
            kind = rng.random()
            if kind < 0.70:
                reference = rng.choice(LIBRARY_REFERENCES)
                text = _fill(rng.choice(LIBRARY_TEMPLATES), reference)
            elif kind < 0.82:
                text = _fill(rng.choice(LIBRARY_TEMPLATES), rng.choice(PLACELESS_REFERENCES))
                if rng.random() < 0.5:
                    lat, lon = rng.choice(POINTS)
                    geo = Geo(round(lat + rng.uniform(-0.004, 0.004), 5), lon)
                else:
                    author = Author(
                        author.handle, author.name, rng.choice(PROFILE_PLACES), author.followers
                    )
            elif kind < 0.97:
                text = rng.choice(OTHER_SENSE_TEXTS)
            else:
                source = "bluesky"
                author = Author("bibliotheekeemland.bsky.social", "Bibliotheek Eemland", None, 4100)
                text = rng.choice(OWN_ACCOUNT_TEXTS)
        else:
            text = rng.choice(CHATTER_TEMPLATES).format(town=rng.choice(TOWNS))
        text += rng.choice(LIBRARY_ENDINGS if "bib" in text.lower() else ENDINGS)
        made.append(
            Post(
                id=f"{source}:wl-{i:06d}",
                source=source,
                text=text,
                created_at=moment,
                url=_url(source, author, i),
                lang="nl",
                author=author,
                geo=geo,
                engagement=Engagement(
                    likes=rng.randint(0, 40), reposts=rng.randint(0, 5), replies=rng.randint(0, 6)
                ),
            )
        )
    return made


def write(
    folder: Path, count: int, files: int, *, seed: int = 8, library_share: float = 0.35
) -> list[Path]:
    """Write `count` posts over `files` JSONL files `posts-00.jsonl` … in `folder` (created),
    round-robin; returns the files' paths."""
    if files < 1:
        raise ValueError("files must be at least 1")
    folder.mkdir(parents=True, exist_ok=True)
    made = posts(count, seed=seed, library_share=library_share)
    paths = [folder / f"posts-{k:02d}.jsonl" for k in range(files)]
    for k, path in enumerate(paths):
        lines = (json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in made[k::files])
        path.write_text("".join(lines), encoding="utf-8")
    return paths


def read(paths: Iterable[Path]) -> list[Post]:
    """The posts in replay files (every line must be a valid post)."""
    return [
        Post.from_dict(json.loads(line))
        for path in paths
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def expected_alerts(config: Path, posts: Sequence[Post]) -> dict[str, str]:
    """Post id → organisation for the posts that become an alert, as listener's own classifier
    decides them over `config` (matched, located, and routed to at least one receiver).

    Only the first alert of a post counts (one per post and organisation, and the classifier
    picks one organisation). Conversations and spikes are not modelled: run the daemons with
    `[spikes] enabled = false` and `follow_ups = false` for the sets to be comparable."""
    from listener.config import load_config
    from listener.pipeline import Classifier

    classifier = Classifier(load_config(config))
    expected: dict[str, str] = {}
    for post in posts:
        decided = classifier.process(post, "replay", None)
        if decided.alert is not None:
            expected[post.id] = decided.alert.message.org_id
    return expected


def _fill(template: str, reference: str) -> str:
    capitalised = reference[:1].upper() + reference[1:]
    return template.format(lib=reference, Lib=capitalised)


def _authors(rng: random.Random) -> dict[str, list[Author]]:
    """A pool of 60 authors per network, with handles in that network's form."""
    pool: dict[str, list[Author]] = {}
    for source in SOURCES:
        people = []
        for _ in range(60):
            first = rng.choice(FIRST_NAMES)
            number = rng.randint(1, 99)
            handle = {
                "bluesky": f"{first}{number}.bsky.social",
                "mastodon": f"@{first}{number}@mastodon.nl",
                "x": f"{first}_{number}",
            }[source]
            location = rng.choice((None, None, "Leusden", "Amersfoort", "Utrecht", "Apeldoorn"))
            followers = int(rng.lognormvariate(5, 1.2))
            people.append(Author(handle, first.capitalize(), location, followers))
        pool[source] = people
    return pool


def _url(source: str, author: Author, i: int) -> str:
    handle = author.handle or "anon"
    if source == "bluesky":
        return f"https://bsky.app/profile/{handle}/post/wl{i:06d}"
    if source == "mastodon":
        user = handle.lstrip("@").split("@")[0]
        return f"https://mastodon.nl/@{user}/{100000 + i}"
    return f"https://x.com/{handle}/status/{1_800_000_000 + i}"
