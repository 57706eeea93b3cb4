"""Destination keys can never leave their folder, never exceed S3's limit, and never collide (property tests).

For any source key (arbitrary unicode, ``.``/``..``/empty segments, backslashes, percent-escapes such as
``%2e%2e``, names of thousands of bytes), every key the pipeline writes for it, the renditions
(``pipeline.keys.rendition_key``) and the manifest (``pipeline.keys.manifest_key``) under its stem
(``pipeline.keys.stem``):

* is relative: it does not start with ``/``;
* has no empty, ``.`` or ``..`` segment and no backslash (a separator on Windows), neither as written
  nor once percent-decoded, so joined onto a folder and normalised it stays inside that folder;
* is at most 1024 bytes of UTF-8 (S3's limit);
* belongs to that source alone: distinct source keys under the upload prefix never share a
  destination key. (Keys that must be cleaned or shortened are told apart by 64 bits of SHA-256:
  "within reason" means no one finds a SHA-256 collision.)
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline import keys
from pipeline.encoding import EXTENSIONS

PREFIXES = ("uploads/", "", "a/b.c/")
#: Widths the template allows (16 to 16384) at both ends, and every output extension.
SUFFIXES = [(width, extension) for width in (16, 320, 16384) for extension in sorted(set(EXTENSIONS.values()))]
DOT_SEGMENTS = {"", ".", ".."}

#: Segments that stress the cleaning: dot segments, separators, escapes of them, a name that looks tagged.
TRICKY = st.sampled_from(
    [
        "",
        ".",
        "..",
        "...",
        "\\",
        "..\\..",
        "%2e",
        "%2e%2e",
        "%2E%2E",
        "%2f",
        "%5c",
        "%252e%252e",
        "%",
        "_",
        "~",
        "a",
        "a~0123456789abcdef",
        "~0123456789abcdef",
        "a.jpg",
        " ",
        "写真",
        "🦊",
    ]
)
UTF8_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
SEGMENT = st.one_of(TRICKY, UTF8_TEXT)
#: A name of thousands of bytes: one character (1 to 4 bytes in UTF-8) repeated.
LONG_NAME = st.builds(lambda char, count: char * count, st.characters(codec="utf-8"), st.integers(200, 3000))
RELATIVE = st.one_of(
    st.lists(SEGMENT, max_size=8).map("/".join),
    st.lists(SEGMENT, max_size=8).map("\\".join),
    UTF8_TEXT,
    st.builds(lambda a, b, c: f"{a}/{b}/{c}", SEGMENT, LONG_NAME, SEGMENT),
    LONG_NAME,
)

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def destination_keys(key: str, prefix: str) -> list[str]:
    """Every key the store step can write for ``key``: each rendition, then the manifest."""
    stem = keys.stem(key, prefix)
    revision = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"  # as long as S3 VersionIds get
    return [keys.rendition_key(stem, revision, width, extension) for width, extension in SUFFIXES] + [
        keys.manifest_key(stem)
    ]


def escape_problems(destination: str) -> list[str]:
    problems = []
    if destination.startswith("/"):
        problems.append("absolute")
    for reading, text in (("as written", destination), ("percent-decoded", unquote(destination))):
        if "\\" in text:
            problems.append(f"a backslash {reading}")
        bad = [segment for segment in text.split("/") if segment in DOT_SEGMENTS]
        if bad:
            problems.append(f"segments {bad} {reading}")
    if not posixpath.normpath(posixpath.join("/dest", destination)).startswith("/dest/"):
        problems.append("leaves /dest once normalised")
    if len(destination.encode()) > keys.MAX_KEY_BYTES:
        problems.append(f"{len(destination.encode())} bytes")
    return problems


@PROPERTY_SETTINGS
@given(prefix=st.sampled_from(PREFIXES), relative=RELATIVE)
@example(prefix="uploads/", relative="../../etc/passwd")
@example(prefix="uploads/", relative="%2e%2e/%2e%2e/etc/passwd")
@example(prefix="uploads/", relative="a\\..\\..\\b.jpg")
@example(prefix="uploads/", relative="/")
@example(prefix="uploads/", relative="")
@example(prefix="uploads/", relative="é" * 2000)
@example(prefix="uploads/", relative="x" * 991 + "/../" + "y")
def test_destination_keys_stay_in_their_folder(prefix: str, relative: str) -> None:
    key = prefix + relative
    stem = keys.stem(key, prefix)
    assert stem
    assert keys.stem(key, prefix) == stem, "deterministic"
    for destination in destination_keys(key, prefix):
        assert destination.startswith(stem + "/")
        assert escape_problems(destination) == [], (key, destination)


@PROPERTY_SETTINGS
@given(key=st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_keys_outside_the_prefix_stay_in_their_folder_too(key: str) -> None:
    """The validate step rejects them; the reconciler and cleanup still compute their stems safely."""
    for destination in destination_keys(key, "uploads/"):
        assert escape_problems(destination) == [], (key, destination)


@PROPERTY_SETTINGS
@given(prefix=st.sampled_from(PREFIXES), relatives=st.lists(RELATIVE, min_size=2, max_size=12, unique=True))
@example(prefix="uploads/", relatives=["twins/a.jpg", "twins/./a.jpg", "twins//a.jpg", "twins\\a.jpg"])
@example(prefix="uploads/", relatives=["a", "a/", "./a", "a/.", "%2e/a"])
@example(prefix="uploads/", relatives=["", "_", "..", ".", "/"])
def test_distinct_keys_never_share_a_destination_key(prefix: str, relatives: list[str]) -> None:
    owners: dict[str, str] = {}
    for relative in relatives:
        key = prefix + relative
        for destination in destination_keys(key, prefix):
            assert owners.setdefault(destination, key) == key, f"{key!r} and {owners[destination]!r} share it"


@PROPERTY_SETTINGS
@given(
    prefix=st.sampled_from(PREFIXES),
    head=st.lists(SEGMENT, max_size=4).map("/".join),
    tail=st.lists(SEGMENT, min_size=1, max_size=4).map("/".join),
)
def test_keys_near_the_length_limit_differing_only_past_the_cut_do_not_collide(
    prefix: str, head: str, tail: str
) -> None:
    """Shortened stems keep only the start of the key: what is cut off must still tell them apart."""
    filler = "x" * keys.MAX_KEY_BYTES
    first, second = f"{prefix}{head}/{filler}/a{tail}", f"{prefix}{head}/{filler}/b{tail}"
    assert keys.stem(first, prefix) != keys.stem(second, prefix)


def test_safe_keys_keep_their_readable_name() -> None:
    """What the README promises: uploads/holiday/beach.jpg -> holiday/beach.jpg/<revision>/<width>w.jpg."""
    assert re.fullmatch(
        r"holiday/beach\.jpg/[0-9a-f]{16}/16w\.avif", destination_keys("uploads/holiday/beach.jpg", "uploads/")[0]
    )
    assert keys.manifest_key(keys.stem("uploads/holiday/beach.jpg", "uploads/")) == "holiday/beach.jpg/manifest.json"
