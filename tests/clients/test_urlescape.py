"""The urllib3 fast path for already-escaped URLs: same answer as urllib3, for any text."""

import urllib.parse

import urllib3.util.url as U
from hypothesis import example, given
from hypothesis import strategies as st

from vkeci.clients import urlescape

ORIGINAL = getattr(U._encode_invalid_chars, "__wrapped__", U._encode_invalid_chars)
FAST = urlescape.fast_encoder(ORIGINAL)
PARTS = [U._PATH_CHARS, U._QUERY_CHARS, U._FRAGMENT_CHARS, U._USERINFO_CHARS, U._UNRESERVED_CHARS]
# Text that is mostly URL-ish, so escapes, bare '%' and lower-case hex all turn up often.
URLISH = st.text(alphabet=st.sampled_from(list("%%%2F2fAaZz09-._~!$&'()*+,;=:@/? #[]\"<>\\^`{|}é\u4e16\x00")))


@given(component=st.one_of(URLISH, st.text()), part=st.sampled_from(PARTS))
@example(component="%%41", part=U._QUERY_CHARS)
@example(component="a%2fb", part=U._QUERY_CHARS)
@example(component="%4", part=U._PATH_CHARS)
@example(component="x=%2F&y=%E4%B8%96", part=U._QUERY_CHARS)
def test_fast_path_answers_exactly_what_urllib3_answers(component, part):
    assert FAST(component, part) == ORIGINAL(component, part)


@given(params=st.dictionaries(st.text(min_size=1), st.text()))
def test_urlencoded_queries_take_the_fast_path_unchanged(params):
    query = urllib.parse.urlencode(params)
    assert urlescape.escaped_unchanged(query, U._QUERY_CHARS)
    assert FAST(query, U._QUERY_CHARS) == ORIGINAL(query, U._QUERY_CHARS) == query


def test_other_inputs_are_left_to_urllib3():
    assert FAST(None, U._QUERY_CHARS) is None
    assert FAST(b"a%2fb c", U._QUERY_CHARS) == ORIGINAL(b"a%2fb c", U._QUERY_CHARS) == "a%2Fb%20c"
    assert not urlescape.escaped_unchanged("a%2fb", U._QUERY_CHARS)
    assert not urlescape.escaped_unchanged("caf\u00e9", U._QUERY_CHARS)


def test_install_is_idempotent_and_reaches_requests():
    import requests

    assert urlescape.install() and urlescape.install()
    wrapped = U._encode_invalid_chars
    assert getattr(wrapped, "__wrapped__", None) is ORIGINAL
    assert not hasattr(ORIGINAL, "__wrapped__")  # installed once, not wrapped twice
    prepared = requests.Request("POST", "http://h/?a=%2F+b&c=d%20", data=None).prepare()
    assert prepared.url == "http://h/?a=%2F+b&c=d%20"
    spaced = requests.Request("GET", "http://h/a b?q=x y").prepare()
    assert spaced.url == "http://h/a%20b?q=x%20y"
