"""The portable search index: normalised word tokens of every event, ranked.

An event is findable by its `index_tokens`: the lower-cased, accent-folded
words of its title, artist, venue name and city, their Snowball stems, and
every prefix of two letters or more (for type-ahead). It stores each of them
once, prefixed by the score the token earns as a query term in it
(`searchRanks`, `ranked_tokens`); a multikey index on them makes a query an
index scan on any MongoDB-compatible server (catalog/search_reads.py). A query
matches events that hold every query term (`holds`, checked on the event's
own fields for the terms after the first); ranking comes from those fields:
whole words above prefixes, title above artist above venue above city, then
earlier start first.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer

_stemmer = snowballstemmer.stemmer("english")
# Letters and digits of any script; underscores and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")
# Letters that carry their mark in the glyph itself, so NFKD cannot strip it.
_UNDECOMPOSABLE = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "þ": "th", "ŧ": "t"})

# Dropped from queries (never from the index) unless nothing else is left, so
# "the weeknd at wembley" still finds "The Weeknd" at "Wembley Stadium".
STOPWORDS = frozenset({"a", "an", "the", "at", "of", "in", "on", "and", "or", "with", "to", "for"})

# Weight of a hit in each field; a whole-word hit always outranks any prefix hit.
FIELD_WEIGHTS = {"title": 4, "artist": 3, "venue": 2, "city": 1}
WHOLE_WORD_BONUS = 10


@lru_cache(maxsize=50_000)
def words(text: str | None) -> tuple[str, ...]:
    """The folded words of `text`: lower case, accents removed, split on anything else.
    (Remembered: a search of several words folds the fields of every event it reads.)"""
    if not text:
        return ()
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_UNDECOMPOSABLE))
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return tuple(_WORD.findall(folded))


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """The word's Snowball stem (remembered: a search ranks each result by stemming its fields' words,
    and a catalog's words are few next to its events)."""
    return _stemmer.stemWord(word)


def index_tokens(*texts: str | None) -> list[str]:
    """Every token a document is findable by: words, stems and 2+ letter prefixes."""
    tokens: set[str] = set()
    for text in texts:
        for word in words(text):
            tokens.add(word)
            tokens.add(stem(word))
            tokens.update(word[:k] for k in range(2, len(word)))
    return sorted(tokens)


def holds(terms: Iterable[str], fields: dict[str, str | None]) -> bool:
    """Whether the fields (title, artist, venue, city) hold every term as one of their
    `index_tokens`: a word, a word's stem, or a word's beginning of two letters or more."""
    field_words = [w for name in FIELD_WEIGHTS for w in words(fields.get(name))]
    return all(
        any(term == w or (2 <= len(term) < len(w) and w.startswith(term)) or term == stem(w) for w in field_words)
        for term in terms
    )


def query_terms(query: str) -> list[str]:
    """The terms a query requires, most selective (longest) first; may be empty."""
    found = words(query)
    kept = [w for w in found if w not in STOPWORDS] or found
    return sorted({stem(w) for w in kept}, key=lambda t: (-len(t), t))


def _field_score(term: str, field_words: Iterable[str], weight: int) -> int:
    best = 0
    for word in field_words:
        if term == word or term == stem(word):
            return WHOLE_WORD_BONUS + weight
        if word.startswith(term):
            best = weight
    return best


def relevance(terms: list[str], fields: dict[str, str | None]) -> int:
    """How well a document's fields (title, artist, venue, city) match the terms."""
    field_words = {name: words(fields.get(name)) for name in FIELD_WEIGHTS}
    return sum(
        max(_field_score(term, field_words[name], weight) for name, weight in FIELD_WEIGHTS.items())
        for term in terms
    )


# Every score one query term can earn in one event, best first (see `relevance`).
TERM_SCORES = sorted({WHOLE_WORD_BONUS + w for w in FIELD_WEIGHTS.values()} | set(FIELD_WEIGHTS.values()), reverse=True)


def rank_token(score: int, token: str) -> str:
    """The ranked token of `token` at `score`: what the ranked index holds and a query asks for."""
    return f"{score:02d}:{token}"


def ranked_tokens(fields: dict[str, str | None]) -> list[str]:
    """Each token an event is findable by, once, prefixed by the score that token earns as a
    query term in this event: a search walks one score at a time, best first, in start order."""
    field_words = {name: words(fields.get(name)) for name in FIELD_WEIGHTS}
    best: dict[str, int] = {}
    for name, weight in FIELD_WEIGHTS.items():
        for word in field_words[name]:
            for token in {word, stem(word)}:
                best[token] = max(best.get(token, 0), WHOLE_WORD_BONUS + weight)
            for k in range(2, len(word)):
                prefix = word[:k]
                best[prefix] = max(best.get(prefix, 0), _field_score(prefix, field_words[name], weight))
    # Best scores first: the server checks a fetched event against the read's ranked token by
    # walking this list, and a search reads the best scores most.
    return sorted((rank_token(score, token) for token, score in best.items()), reverse=True)
