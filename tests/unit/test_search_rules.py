"""The search's pure rules, without a server: tokens, query terms, relevance and the ranked tokens."""

from __future__ import annotations

import pytest

from app.catalog.search import (
    FIELD_WEIGHTS,
    TERM_SCORES,
    WHOLE_WORD_BONUS,
    holds,
    index_tokens,
    query_terms,
    rank_token,
    ranked_tokens,
    relevance,
)


def test_index_tokens_hold_folded_words_stems_and_prefixes():
    tokens = index_tokens("Renaissance World Tour", "Beyoncé", "Wembley Stadium", "London")
    for token in ["renaissance", "renaiss", "re", "world", "tour", "beyonce", "beyonc", "be", "wembley", "wem",
                  "stadium", "london", "lo"]:
        assert token in tokens, token
    assert "Beyoncé" not in tokens and "beyoncé" not in tokens
    assert all(t == t.lower() for t in tokens)


def test_index_tokens_are_sorted_unique_and_have_no_one_letter_prefixes():
    tokens = index_tokens("Wembley Wembley", "Wem")
    assert tokens == sorted(set(tokens))
    assert "w" not in tokens
    assert min(len(t) for t in tokens) == 2
    assert index_tokens("A") == ["a"]  # a one-letter word is still a word


def test_index_tokens_include_stems():
    tokens = index_tokens("Summer Nights", None, "", "Concerts")
    assert {"night", "nights", "concert", "concerts", "summer"} <= set(tokens)


def test_index_tokens_of_nothing_is_empty():
    assert index_tokens() == []
    assert index_tokens(None, "", "  ", "!!!") == []


def test_index_tokens_split_on_punctuation_and_keep_digits():
    tokens = index_tokens("AC/DC: Power-Up 2027")
    assert {"ac", "dc", "power", "up", "2027", "20", "202"} <= set(tokens)
    assert not any(c in t for t in tokens for c in "/:- ")


def test_query_terms_fold_stem_dedupe_and_put_longest_first():
    assert query_terms("Beyoncé") == ["beyonc"]
    assert query_terms("CONCERTS concert") == ["concert"]
    assert query_terms("wem renaissance") == ["renaiss", "wem"]
    terms = query_terms("Tour Renaissance Wembley")
    assert terms == sorted(terms, key=lambda t: (-len(t), t))
    assert set(terms) == {"tour", "renaiss", "wembley"}


def test_query_terms_drop_stopwords_unless_nothing_else_is_left():
    assert query_terms("the weeknd at wembley") == ["wembley", "weeknd"]
    assert query_terms("The The") == ["the"]
    assert query_terms("a") == ["a"]


def test_query_terms_of_punctuation_or_blank_are_empty():
    assert query_terms("") == []
    assert query_terms("   ") == []
    assert query_terms("!!! ... ?") == []


def test_every_query_term_is_in_the_index_of_matching_text():
    tokens = set(index_tokens("Renaissance World Tour", "Beyoncé", "Wembley Stadium", "London"))
    for query in ["beyonce", "RENAISSANCE", "renaiss", "wem", "tours", "touring", "the world at wembley", "lond"]:
        assert set(query_terms(query)) <= tokens, query


FIELDS = {"title": "Rock Night", "artist": "The Sharks", "venue": "Wembley Stadium", "city": "London"}


def test_relevance_whole_word_beats_prefix():
    assert relevance(["rock"], {"title": "Rock Night"}) > relevance(["rock"], {"title": "Rockabilly Riot"}) > 0
    # Even a whole word in the weakest field beats a prefix in the strongest.
    assert relevance(["rock"], {"city": "Rock"}) > relevance(["rock"], {"title": "Rockabilly"})


def test_relevance_ranks_fields_title_artist_venue_city():
    scores = [relevance(["luna"], {field: "Luna"}) for field in ("title", "artist", "venue", "city")]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4
    prefixes = [relevance(["lu"], {field: "Luna"}) for field in ("title", "artist", "venue", "city")]
    assert prefixes == sorted(prefixes, reverse=True) and len(set(prefixes)) == 4


def test_relevance_counts_stems_as_whole_words_and_folds_accents():
    assert relevance(query_terms("concerts"), {"title": "Concert"}) == relevance(query_terms("concert"), {"title": "Concert"})
    assert relevance(query_terms("beyonce"), {"artist": "Beyoncé"}) == relevance(query_terms("beyonce"), {"artist": "Beyonce"})
    assert relevance(query_terms("beyonce"), {"artist": "Beyoncé"}) > relevance(query_terms("beyon"), {"artist": "Beyoncé"})


def test_relevance_sums_over_terms_and_takes_each_terms_best_field():
    one = relevance(["rock"], FIELDS)
    two = relevance(["rock", "london"], FIELDS)
    assert two > one > 0
    # "rock" is in the title only: its best field is the title whatever else matches.
    assert relevance(["rock"], FIELDS | {"city": "Rock"}) == one


def test_relevance_is_zero_without_a_match():
    assert relevance(["metallica"], FIELDS) == 0
    assert relevance(["rock"], {}) == 0
    assert relevance([], FIELDS) == 0


def test_each_ranked_token_carries_the_score_the_token_earns_as_a_query_term():
    fields = {"title": "Rock Night", "artist": "Rockets", "venue": "Wembley Stadium", "city": "London"}
    ranked = ranked_tokens(fields)
    scores = {token.split(":", 1)[1]: int(token.split(":", 1)[0]) for token in ranked}
    assert len(scores) == len(ranked), "each token once, at its best score"
    # The ranked index answers a one-word query with the score relevance() gives it.
    for term in ("rock", "ro", "night", "rocket", "wem", "london", "lo"):
        assert scores[term] == relevance([term], fields), term
    assert scores["rock"] == WHOLE_WORD_BONUS + FIELD_WEIGHTS["title"]  # whole word in the title beats artist's prefix
    assert set(scores.values()) <= set(TERM_SCORES)
    assert ranked == sorted(ranked, reverse=True) and rank_token(scores["rock"], "rock") in ranked
    assert ranked[0].startswith(f"{WHOLE_WORD_BONUS + FIELD_WEIGHTS['title']}:")  # best first: found first


@pytest.mark.parametrize("fields", [
    {"title": "Renaissance World Tour", "artist": "Beyoncé", "venue": "Wembley Stadium", "city": "London"},
    {"title": "AC/DC: Power-Up 2027", "artist": None, "venue": "Ø Arena", "city": "Århus"},
    {"title": "Summer Nights", "artist": "The Concerts", "venue": "", "city": "A"},
])
def test_fields_hold_exactly_their_index_tokens(fields):
    """`holds` (the check of a search's other terms) agrees with `index_tokens` (what the index finds)."""
    tokens = set(index_tokens(fields["title"], fields["artist"], fields["venue"], fields["city"]))
    candidates = tokens | {"x", "zz", "wembleys", "renaissancee", "nights", "nigh", "s", "2028", "ar"}
    for term in sorted(candidates):
        assert holds([term], fields) == (term in tokens), term
    assert holds(sorted(tokens), fields) and not holds([*sorted(tokens), "zz"], fields)


def test_ranked_tokens_of_an_event_without_text_are_empty():
    assert ranked_tokens({"title": "", "artist": None}) == []
