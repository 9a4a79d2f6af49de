"""``redaction.redact_text`` scans from one "=" to the next; these check it against the single regular expression it
replaced (kept here as the reference), for any text, and on the texts that matter."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.core.redaction import REDACTED, SECRET_QUERY, redact_text

_PAIR = re.compile(r"(?<![A-Za-z0-9_.~%+-])(?P<name>[A-Za-z0-9_.~%+-]+)=(?P<value>[^&\s'\"]*)")


def reference(text: str) -> str:
    def pair(match: re.Match[str]) -> str:
        name = match["name"]
        return f"{name}={REDACTED}" if unquote_plus(name).lower() in SECRET_QUERY else match[0]

    return _PAIR.sub(pair, text) if "=" in text else text


# texts made of the pieces that matter: secret and other names, their encoded forms, separators, quotes, whitespace
PIECES = st.sampled_from(
    [
        *sorted(SECRET_QUERY),
        "X-Emulator-Signature",
        "Sig",
        "api%5Fkey",
        "api+key",
        "to%6Ben",
        "%",
        "+",
        "=",
        "==",
        "&",
        "?",
        " ",
        "\t",
        "\u2003",
        "'",
        '"',
        "a",
        "Z9",
        ".~-_",
        "é",
        "abc123",
        "http://h/p",
        "\n",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=30).map("".join))
def test_the_scan_redacts_exactly_what_the_pattern_did(text: str) -> None:
    assert redact_text(text) == reference(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_redacted_as_the_pattern_did(text: str) -> None:
    assert redact_text(text) == reference(text)


def test_a_presigned_url_in_an_answer_keeps_everything_but_its_signature() -> None:
    url = (
        "http://127.0.0.1:8000/posteverywhere/api/storage/images/0f71?X-Emulator-Expires=1796233001"
        "&X-Emulator-Content-Type=multipart%2Fform-data&X-Emulator-Signature=33b47139&api%5Fkey=k&sig=s&plain=p"
    )
    body = f'{{"upload_url":"{url}","next":"a=b=c"}}'
    assert redact_text(body) == (
        '{"upload_url":"http://127.0.0.1:8000/posteverywhere/api/storage/images/0f71?X-Emulator-Expires=1796233001'
        "&X-Emulator-Content-Type=multipart%2Fform-data&X-Emulator-Signature=REDACTED&api%5Fkey=REDACTED&sig=REDACTED"
        '&plain=p","next":"a=b=c"}'
    )
    assert redact_text("no pairs here") == "no pairs here"
    assert redact_text("token==x&=y") == "token=REDACTED&=y"
