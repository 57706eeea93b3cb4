"""pipeline.uploads: what the upload API accepts, the keys it makes, its page tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import uploads
from pipeline.uploads import BadRequest

LIMIT = 50 * 1024 * 1024


def _body(**fields: Any) -> str:
    return json.dumps({"filename": "beach.jpg", "contentType": "image/jpeg", "size": 123456, **fields})


def test_a_well_formed_request_is_accepted() -> None:
    request = uploads.parse_request(_body(), LIMIT)
    assert (request.filename, request.content_type, request.size) == ("beach.jpg", "image/jpeg", 123456)
    assert uploads.parse_request(_body(contentType="IMAGE/PNG", size=LIMIT), LIMIT).content_type == "image/png"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "MalformedJson"),
        ("{", "MalformedJson"),
        ("[1]", "MalformedJson"),
        ('"text"', "MalformedJson"),
        (_body(extra=1), "UnknownField"),
        (_body(filename=None), "InvalidFilename"),
        (_body(filename="   "), "InvalidFilename"),
        (_body(filename="../etc/passwd"), "InvalidFilename"),
        (_body(filename="a\\b.jpg"), "InvalidFilename"),
        (_body(filename=".."), "InvalidFilename"),
        (_body(filename="a\x00.jpg"), "InvalidFilename"),
        (_body(filename="é" * 101), "InvalidFilename"),
        (_body(contentType="application/pdf"), "UnsupportedContentType"),
        (_body(contentType="image/svg+xml"), "UnsupportedContentType"),
        (_body(contentType=None), "UnsupportedContentType"),
        (_body(size=0), "InvalidSize"),
        (_body(size=-1), "InvalidSize"),
        (_body(size=1.5), "InvalidSize"),
        (_body(size="12"), "InvalidSize"),
        (_body(size=True), "InvalidSize"),
        (_body(size=LIMIT + 1), "TooLarge"),
    ],
)
def test_a_bad_request_names_its_problem(body: str, error: str) -> None:
    with pytest.raises(BadRequest) as caught:
        uploads.parse_request(body, LIMIT)
    assert caught.value.error == error
    assert str(caught.value)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("beach.jpg", "beach.jpg"),
        ("My Holiday (1).JPG", "My-Holiday-1-.JPG"),
        ("Crème brûlée.png", "Creme-brulee.png"),
        ("写真.jpg", "jpg"),
        ("写真", "upload.jpg"),
        ("...", "upload.jpg"),
        ("-.jpg", "jpg"),
    ],
)
def test_file_names_are_made_safe(name: str, safe: str) -> None:
    assert uploads.safe_filename(name, "image/jpeg") == safe


@given(st.text(min_size=1, max_size=60))
def test_a_safe_name_is_one_plain_segment_whatever_the_input(name: str) -> None:
    try:
        safe = uploads.safe_filename(name, "image/png")
    except BadRequest:
        return
    assert safe
    assert "/" not in safe
    assert safe not in (".", "..")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)
    assert any(c.isalnum() for c in safe)


def test_the_post_pins_the_content_type_and_the_size_range() -> None:
    request = uploads.parse_request(_body(contentType="image/webp"), LIMIT)
    fields, conditions = uploads.post_conditions(request, LIMIT)
    assert fields == {"Content-Type": "image/webp"}
    assert conditions == [{"Content-Type": "image/webp"}, ["content-length-range", 1, LIMIT]]
    assert uploads.upload_key("uploads/", "ab" * 16, "beach.jpg") == f"uploads/{'ab' * 16}/beach.jpg"


def test_list_parameters_are_checked() -> None:
    assert uploads.parse_list_query(None) == uploads.ListQuery(None, uploads.DEFAULT_LIST_LIMIT, None)
    assert uploads.parse_list_query({"status": "FAILED", "limit": "7"}).limit == 7
    for params, error in (
        ({"status": "LOST"}, "InvalidStatus"),
        ({"limit": "0"}, "InvalidLimit"),
        ({"limit": "101"}, "InvalidLimit"),
        ({"limit": "ten"}, "InvalidLimit"),
        ({"next": "!!"}, "InvalidToken"),
        ({"next": "e30"}, "InvalidToken"),
        ({"sort": "asc"}, "UnknownParameter"),
    ):
        with pytest.raises(BadRequest) as caught:
            uploads.parse_list_query(params)
        assert caught.value.error == error


def test_page_tokens_round_trip_and_nothing_else_is_taken() -> None:
    last = {"id": {"S": "ab" * 16}, "listing": {"S": "upload"}, "createdAt": {"S": "2026-01-01T00:00:00Z"}}
    token = uploads.encode_token(last)
    assert token is not None
    assert uploads.decode_token(token) == last
    assert uploads.encode_token(None) is None
    forged = uploads.encode_token({"id": {"S": "x"}, "password": {"S": "y"}})
    assert forged is not None
    with pytest.raises(BadRequest):
        uploads.decode_token(forged)
    with pytest.raises(BadRequest):
        uploads.decode_token(uploads.encode_token({"id": {"N": "1"}}) or "")
