"""The query language of saved searches: tokens, a parser, and the tree it builds.

    query     := or
    or        := and ("OR" and)*
    and       := near (["AND"] near)*          adjacent clauses are ANDed
    near      := unary (("NEAR/n" | "ONEAR/n") unary)*
    unary     := "NOT" unary | "-" primary | primary
    primary   := "(" or ")" | term | phrase | field
    term      := word ["*"] ["~n"]             bieb*   Eemland~1   #bieb   😡   @handle
    phrase    := '"' words '"' ["~n"]          "de bieb"   "bibliotheek eemland"~2
    field     := ("lang" | "source" | "author" | "has") ":" value

Operators are upper case, so 'and', 'or' and 'not' are ordinary words. NOT binds tightest, then
NEAR/ONEAR, then AND, then OR. `a NEAR/n b` holds when at most n words stand between an
occurrence of a and one of b; ONEAR/n also needs a before b. `a NEAR/n NOT b` holds when an
occurrence of a has no b within n words. `~n` allows n typing mistakes (edits) in a term or a
phrase as a whole; without it a term uses the search's fuzzy threshold.

Every node keeps its position in the query text, and a `QuerySyntaxError` says where (offset,
which the loader turns into file, line and column) and what was expected there.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from listener.text import strip_accents

FIELDS = ("lang", "source", "author", "has")
HAS_VALUES = ("geo", "location", "link", "hashtag", "mention")
MIN_PREFIX = 3  # letters before a wildcard: 'bi*' would match half the language
MAX_TYPOS = 3
MAX_NEAR = 50
MAX_DEPTH = 40  # nested parentheses / NOTs


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed: where (offset into the query) and what was expected."""

    def __init__(self, message: str, offset: int, query: str) -> None:
        self.message = message
        self.offset = max(0, min(offset, len(query)))
        self.query = query
        line, column = self.line_column()
        super().__init__(f"line {line}, column {column}: {message}")

    def line_column(self) -> tuple[int, int]:
        """1-based line and column of the error inside the query text."""
        before = self.query[: self.offset]
        line = before.count("\n") + 1
        column = self.offset - (before.rfind("\n") + 1) + 1
        return line, column


# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a term: folded text, and whether it ends in a wildcard."""

    text: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Term:
    """A word or a phrase to find in the post text."""

    written: str  # as in the query, for evidence: 'Eemland~1', '"de bieb"'
    words: tuple[Word, ...]
    typos: int | None = None  # ~n; None: the search's fuzzy threshold
    phrase: bool = False
    hashtag: bool = False  # '#bieb' finds the hashtag only
    mention: bool = False  # '@biebeemland' finds the mention only
    emoji: bool = False
    start: int = 0
    end: int = 0

    @property
    def wildcard(self) -> bool:
        return any(w.prefix for w in self.words)


@dataclass(frozen=True, slots=True)
class Field:
    """A filter on the post rather than its text: lang:nl, source:bluesky, author:@x, has:geo."""

    name: str
    value: str
    start: int = 0
    end: int = 0

    @property
    def written(self) -> str:
        return f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class Near:
    left: Node
    right: Node
    distance: int
    ordered: bool  # ONEAR: left before right
    start: int = 0
    end: int = 0


Node = Term | Field | Not | And | Or | Near


def terms_of(node: Node) -> list[Term]:
    """Every term in the tree, in query order."""
    match node:
        case Term():
            return [node]
        case Field():
            return []
        case Not():
            return terms_of(node.child)
        case And() | Or():
            return [t for child in node.children for t in terms_of(child)]
        case Near():
            return terms_of(node.left) + terms_of(node.right)
    raise TypeError(node)  # pragma: no cover


def fields_of(node: Node) -> list[Field]:
    """Every field filter in the tree, in query order."""
    match node:
        case Field():
            return [node]
        case Term():
            return []
        case Not():
            return fields_of(node.child)
        case And() | Or():
            return [f for child in node.children for f in fields_of(child)]
        case Near():
            return fields_of(node.left) + fields_of(node.right)
    raise TypeError(node)  # pragma: no cover


def positive(node: Node) -> bool:
    """Whether the node needs some text to be present (rather than only restricting posts)."""
    match node:
        case Term():
            return True
        case Field() | Not():
            return False
        case And() | Or():
            return any(positive(c) for c in node.children)
        case Near():
            return positive(node.left) or positive(node.right)
    raise TypeError(node)  # pragma: no cover


def conjuncts(node: Node) -> list[Node]:
    """The clauses that must all hold: the children of a top-level AND, else the node."""
    return list(node.children) if isinstance(node, And) else [node]


# --- words as the matcher sees them ------------------------------------------------------------

_APOSTROPHE_S = re.compile(r"(?<![\w'’])['’]s[\s-]+(?=\w)", re.IGNORECASE)  # 's-Hertogenbosch
_SPLIT = re.compile(r"[^0-9a-z]+")


def key(word: str) -> str:
    """How a folded word is compared: Dutch 'ij' and 'y' are one letter (IJssel, Yssel)."""
    return word.replace("ij", "y")


def is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF


def emoji_key(text: str) -> str:
    """An emoji without variation selectors, skin tones or joiners: '👍🏽' → '👍'."""
    return "".join(
        ch
        for ch in text
        if not (0xFE00 <= ord(ch) <= 0xFE0F or 0x1F3FB <= ord(ch) <= 0x1F3FF or ch == "\u200d")
    )


def fold_words(text: str) -> list[str]:
    """Folded words of a piece of query text: accents and case gone, ''s-' prefix dropped."""
    return [w for w in _SPLIT.split(strip_accents(_APOSTROPHE_S.sub("", text))) if w]


# --- the parser --------------------------------------------------------------------------------

TokenKind = Literal["(", ")", "AND", "OR", "NOT", "-", "NEAR", "ONEAR", "phrase", "word", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int
    number: int = 0  # NEAR/n's n


_OPERATOR = re.compile(r"(O?NEAR)/(\d*)")
_WORD_END = '()" \t\r\n'


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(Token(ch, ch, i, i + 1))  # type: ignore[arg-type]
            i += 1
            continue
        if ch == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QuerySyntaxError('unclosed phrase: expected a closing "', i, query)
            end = close + 1
            while end < n and query[end] not in _WORD_END:
                end += 1  # a suffix such as ~2
            tokens.append(Token("phrase", query[i:end], i, end))
            i = end
            continue
        if ch == "-" and i + 1 < n and query[i + 1] not in " \t\r\n)":
            before = query[i - 1] if i else " "
            if before.isspace() or before == "(":
                tokens.append(Token("-", "-", i, i + 1))
                i += 1
                continue
        end = i
        while end < n and query[end] not in _WORD_END:
            end += 1
        text = query[i:end]
        if text in ("AND", "OR", "NOT"):
            tokens.append(Token(text, text, i, end))  # type: ignore[arg-type]
        elif m := _OPERATOR.fullmatch(text):
            if not m.group(2):
                raise QuerySyntaxError(
                    f"{m.group(1)} needs a distance: expected {m.group(1)}/n, e.g. NEAR/3",
                    end,
                    query,
                )
            distance = int(m.group(2))
            if not 0 <= distance <= MAX_NEAR:
                raise QuerySyntaxError(
                    f"{m.group(1)}/{distance}: the distance must be 0 to {MAX_NEAR} words",
                    i + len(m.group(1)) + 1,
                    query,
                )
            tokens.append(Token(m.group(1), text, i, end, distance))  # type: ignore[arg-type]
        elif text in ("NEAR", "ONEAR") or text.startswith(("NEAR/", "ONEAR/")):
            raise QuerySyntaxError(
                f"bad operator {text!r}: expected NEAR/n or ONEAR/n with n a number",
                i,
                query,
            )
        else:
            tokens.append(Token("word", text, i, end))
        i = end
    tokens.append(Token("end", "", n, n))
    return tokens


_SUFFIX = re.compile(r"~(\d*)$")


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.pos = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def kind(self) -> TokenKind:
        return self.tokens[self.pos].kind

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def error(self, message: str, token: Token | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(message, (token or self.token).start, self.query)

    def parse(self) -> Node:
        if self.kind() == "end":
            raise self.error("empty query: expected a term, a phrase or a field filter")
        node = self.or_()
        if self.kind() == ")":
            raise self.error("unexpected ')': no '(' to close")
        if self.kind() != "end":  # pragma: no cover - and_() consumes any clause start
            raise self.error(f"unexpected {self.token.text!r}")
        return node

    def or_(self) -> Node:
        first = self.and_()
        children = [first]
        while self.kind() == "OR":
            self.advance()
            children.append(self.and_())
        if len(children) == 1:
            return first
        return Or(tuple(children), children[0].start, children[-1].end)

    def and_(self) -> Node:
        first = self.near()
        children = [first]
        while True:
            if self.kind() == "AND":
                self.advance()
            elif self.kind() not in ("(", "NOT", "-", "phrase", "word"):
                break
            children.append(self.near())
        if len(children) == 1:
            return first
        return And(tuple(children), children[0].start, children[-1].end)

    def near(self) -> Node:
        left = self.unary()
        while self.kind() in ("NEAR", "ONEAR"):
            operator = self.advance()
            right = self.unary()
            for side in (left, right):
                if isinstance(side, Field):
                    raise QuerySyntaxError(
                        f"{side.written} is a filter on the post, not words: it cannot be "
                        f"{operator.kind} something",
                        side.start,
                        self.query,
                    )
            if not (positive(left) or positive(right)):
                raise QuerySyntaxError(
                    f"{operator.text} needs words on at least one side", operator.start, self.query
                )
            left = Near(
                left, right, operator.number, operator.kind == "ONEAR", left.start, right.end
            )
        return left

    def unary(self) -> Node:
        token = self.token
        if token.kind in ("NOT", "-"):
            self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} nested NOTs or parentheses")
            if token.kind == "-" and self.kind() not in ("(", "word", "phrase"):
                raise self.error("expected a term, phrase or field right after '-'")
            child = self.unary() if token.kind == "NOT" else self.primary()
            self.depth -= 1
            return Not(child, token.start, child.end)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == "(":
            self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} nested NOTs or parentheses")
            if self.kind() == ")":
                raise self.error("empty parentheses: expected a term, a phrase or a field filter")
            node = self.or_()
            if self.kind() != ")":
                raise QuerySyntaxError(
                    f"expected ')' to close the '(' at column {self._column(token.start)}",
                    self.token.start,
                    self.query,
                )
            close = self.advance()
            self.depth -= 1
            if isinstance(node, Term | Field):
                return node
            return dataclasses.replace(node, start=token.start, end=close.end)  # with its ( )
        if token.kind == "word":
            self.advance()
            return self.word(token)
        if token.kind == "phrase":
            self.advance()
            return self.phrase(token)
        if token.kind == "end":
            raise self.error("the query ends too soon: expected a term, a phrase or '('")
        if token.kind == ")":
            raise self.error("unexpected ')': expected a term, a phrase or '('")
        raise self.error(f"unexpected {token.text}: expected a term, a phrase or '(' before it")

    def _column(self, offset: int) -> int:
        return QuerySyntaxError("", offset, self.query).line_column()[1]

    def typos(self, text: str, token: Token) -> tuple[str, int | None]:
        m = _SUFFIX.search(text)
        if m is None:
            if "~" in text:
                raise QuerySyntaxError(
                    "'~' must end the term, followed by a number: e.g. Eemland~1",
                    token.start + text.index("~"),
                    self.query,
                )
            return text, None
        if not m.group(1):
            raise QuerySyntaxError(
                "expected a number after '~': the typing mistakes allowed, e.g. Eemland~1",
                token.start + m.end(),
                self.query,
            )
        typos = int(m.group(1))
        if typos > MAX_TYPOS:
            raise QuerySyntaxError(
                f"~{typos}: at most ~{MAX_TYPOS} typing mistakes",
                token.start + m.start(),
                self.query,
            )
        return text[: m.start()], typos

    def word(self, token: Token) -> Node:
        text = token.text
        name, colon, value = text.partition(":")
        if colon and name.lower() in FIELDS:
            return self.field(name.lower(), value, token)
        text, typos = self.typos(text, token)
        if not text:
            raise self.error("expected a word before '~'", token)
        hashtag = text.startswith("#") and len(text) > 1
        mention = text.startswith("@") and len(text) > 1
        body = text[1:] if hashtag or mention else text
        if body.endswith("*"):
            stem = body[:-1]
            if "*" in stem:
                raise self.error("a wildcard '*' may only end a word: bieb*", token)
            if typos is not None:
                raise self.error("a wildcard term cannot also allow typos (~n)", token)
            folded = fold_words(stem)
            if len(folded) != 1 or len(folded[0]) < MIN_PREFIX:
                raise QuerySyntaxError(
                    f"a wildcard needs at least {MIN_PREFIX} letters before '*' in one word",
                    token.start,
                    self.query,
                )
            words: tuple[Word, ...] = (Word(folded[0], prefix=True),)
        elif "*" in body:
            raise self.error("a wildcard '*' may only end a word: bieb*", token)
        else:
            emoji = "".join(ch for ch in emoji_key(body) if is_emoji(ch))
            folded = fold_words(body)
            if emoji and not folded:
                return Term(token.text, tuple(Word(ch) for ch in emoji), None,
                            phrase=len(emoji) > 1, emoji=True, start=token.start,
                            end=token.end)  # fmt: skip
            if not folded:
                raise self.error(f"{token.text!r} has no letters or digits to search for", token)
            words = tuple(Word(w) for w in folded)
        if mention and len(words) > 1:
            words = (Word(".".join(w.text for w in words)),)  # '@x.bsky.social', one handle
        return Term(token.text, words, typos, phrase=len(words) > 1, hashtag=hashtag,
                    mention=mention, start=token.start, end=token.end)  # fmt: skip

    def phrase(self, token: Token) -> Node:
        close = token.text.rindex('"')
        inner, suffix = token.text[1:close], token.text[close + 1 :]
        typos: int | None = None
        if suffix:
            if not suffix.startswith("~"):
                raise QuerySyntaxError(
                    f"unexpected {suffix!r} after the phrase: expected a space or ~n",
                    token.start + close + 1,
                    self.query,
                )
            _, typos = self.typos(suffix, Token("word", suffix, token.start + close + 1, token.end))
        words: list[Word] = []
        for raw in _APOSTROPHE_S.sub("", inner).split():
            prefix = raw.endswith("*")
            folded = fold_words(raw[:-1] if prefix else raw)
            if prefix and (len(folded) != 1 or len(folded[0]) < MIN_PREFIX or "*" in raw[:-1]):
                raise QuerySyntaxError(
                    f"a wildcard needs at least {MIN_PREFIX} letters before '*' in one word",
                    token.start + 1 + inner.index(raw),
                    self.query,
                )
            if "*" in raw[:-1]:
                raise self.error("a wildcard '*' may only end a word", token)
            emoji = "".join(ch for ch in emoji_key(raw) if is_emoji(ch))
            words += [Word(ch) for ch in emoji]
            words += [Word(w) for w in folded[:-1]]
            if folded:
                words.append(Word(folded[-1], prefix))
        if not words:
            raise self.error("an empty phrase: expected words between the quotes", token)
        if typos is not None and any(w.prefix for w in words):
            raise self.error("a phrase with a wildcard cannot also allow typos (~n)", token)
        return Term(token.text, tuple(words), typos, phrase=True, start=token.start,
                    end=token.end)  # fmt: skip

    def field(self, name: str, value: str, token: Token) -> Field:
        where = token.start + len(name) + 1
        if not value:
            raise QuerySyntaxError(f"expected a value after '{name}:'", where, self.query)
        if name == "has" and value.lower() not in HAS_VALUES:
            raise QuerySyntaxError(
                f"unknown has:{value}: expected one of {', '.join(HAS_VALUES)}", where, self.query
            )
        if name == "lang" and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]+)?", value):
            raise QuerySyntaxError(
                f"lang:{value} is not a language code: expected e.g. lang:nl", where, self.query
            )
        if name == "author" and not value.lstrip("@"):
            raise QuerySyntaxError("expected a handle after 'author:'", where, self.query)
        return Field(name, value.lower(), token.start, token.end)


def parse(query: str) -> Node:
    """The query's tree, or QuerySyntaxError saying where and what was expected."""
    return _Parser(query).parse()


def seeds(node: Node) -> list[str]:
    """What to ask a source's search API for so that every post the query can match is among
    the results: every alternative of an OR, and one required side of an AND or NEAR (the
    longest term there; listener checks the rest itself). A wildcard asks for its stem."""
    match node:
        case Term():
            return [] if node.emoji else [" ".join(w.text for w in node.words)]
        case Field() | Not():
            return []
        case Or():
            return [s for child in node.children for s in seeds(child)]
        case And():
            sides = [seeds(child) for child in node.children if positive(child)]
        case Near():
            sides = [seeds(side) for side in (node.left, node.right) if positive(side)]
    sides = [side for side in sides if side]
    if not sides:
        return []
    return max(sides, key=lambda side: (min(len(s) for s in side), -len(side)))
