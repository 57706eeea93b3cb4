"""HEIF containers (ISO/IEC 23008-12): the ISO base media boxes HEIC and AVIF are made of, the meta box that
describes a HEIF's images, and pillow-heif, the reader of HEIC, registered with Pillow on the first HEIF.

The parsing is pure (no imaging library, no exception on damaged data): ``formats`` counts a HEIF's images
with it, and ``inspection`` reads from it what validate checks before libheif reads anything: where the meta
box ends, the primary image's coded size (its ``ispe``) and where each item's data lies in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from pipeline.errors import TooManyPixels

#: ftyp brands of HEVC-coded HEIF: images (heic, heix, heim, heis) and image sequences (hevc, hevx, hevm,
#: hevs), the brands libheif's HEVC decoder reads.
HEVC_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
#: The structural brands of HEIF images (mif1) and image sequences (msf1): a compatible brand names the coding.
STRUCTURAL_BRANDS: Final = frozenset({b"mif1", b"msf1"})
#: Item types libheif makes images of; the others (Exif, mime, uri) are metadata.
IMAGE_ITEMS: Final = frozenset(
    {b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"j2k1", b"avc1", b"vvc1", b"evc1", b"unci", b"tili"}
)
#: Item references that make an image part of another one (its thumbnail, its alpha or depth plane), not
#: an image of its own.
_DEPENDENT: Final = (b"thmb", b"auxl")


def _uint(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at : at + size], "big")


def boxes(data: bytes, start: int, end: int, kind: bytes | None = None) -> Iterator[tuple[bytes, int, int]]:
    """The boxes between ``start`` and ``end`` (of type ``kind``, or all): (type, payload start, payload end).

    A box that claims more bytes than there are ends at ``end``; the walk stops at a size below the header's.
    """
    end = min(end, len(data))
    at = start
    while at + 8 <= end:
        size = _uint(data, at, 4)
        header = 8
        if size == 1:
            size, header = _uint(data, at + 8, 8), 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        if kind is None or data[at + 4 : at + 8] == kind:
            yield data[at + 4 : at + 8], at + header, min(at + size, end)
        at += size


def box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The payload (start, end) of the first box of type ``kind`` between ``start`` and ``end``."""
    for _, payload, stop in boxes(data, start, end, kind):
        return payload, stop
    return None


def top_level(head: bytes, size: int) -> Iterator[tuple[bytes, int, int]]:
    """The top-level boxes whose header lies in ``head``, the first bytes of an object of ``size`` bytes:
    (type, payload start, end), where ``end`` may lie past the head, or past ``size`` when the object is
    cut short. A box of size 0 extends to the end of the object. Stops at a size below the header's."""
    at = 0
    while at + 8 <= len(head):
        declared, header = _uint(head, at, 4), 8
        if declared == 1:
            if at + 16 > len(head):
                return
            declared, header = _uint(head, at + 8, 8), 16
        elif declared == 0:
            declared = max(size - at, header)
        if declared < header:
            return
        yield head[at + 4 : at + 8], at + header, at + declared
        at += declared


@dataclass(frozen=True, slots=True)
class Meta:
    """What a HEIF's meta box says of its items (each named by its item ID)."""

    primary: int | None = None
    #: Each item's type and whether it is hidden (the tiles of a grid are).
    items: dict[int, tuple[bytes, bool]] = field(default_factory=dict)
    #: The items that refer to another as its thumbnail or auxiliary image (alpha, depth).
    dependent: set[int] = field(default_factory=set)
    #: Each image's coded size (its ``ispe`` property): width and height before any transformation.
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Where each item's data lies in the file: (offset, length), a length of 0 running to the end.
    extents: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def images(self) -> int:
        """The top-level images, as libheif counts them: image items neither hidden nor a thumbnail or an
        auxiliary image of another."""
        return sum(
            kind in IMAGE_ITEMS and not hidden and item not in self.dependent
            for item, (kind, hidden) in self.items.items()
        )

    def primary_size(self) -> tuple[int, int] | None:
        return None if self.primary is None else self.sizes.get(self.primary)

    def data_end(self, kind: bytes | None = None) -> int:
        """Where the data of the items (of type ``kind``, or all) ends in the file: the largest end of their
        extents (a length of 0 counts its offset); 0 when they have none."""
        return max(
            (
                offset + length
                for item, spans in self.extents.items()
                if kind is None or self.items.get(item, (b"", False))[0] == kind
                for offset, length in spans
            ),
            default=0,
        )


def meta_box(data: bytes) -> tuple[int, int] | None:
    """The payload of the top-level meta box, when the whole of it lies in ``data``."""
    for kind, start, end in top_level(data, len(data)):
        if kind == b"meta":
            return (start, end) if end <= len(data) else None
    return None


def parse(data: bytes, start: int, end: int) -> Meta:
    """Read a meta box (its payload from ``start`` to ``end``): primary item, items, references, coded
    sizes and item locations. Fields that lie are read as they are; nothing raises."""
    children = start + 4  # a full box: version and flags first
    pitm = box(data, children, end, b"pitm")
    meta = Meta(primary=_uint(data, pitm[0] + 4, 2 if _uint(data, pitm[0], 1) == 0 else 4) if pitm else None)
    if iinf := box(data, children, end, b"iinf"):
        _items(data, *iinf, meta.items)
    if iref := box(data, children, end, b"iref"):
        id_size = 2 if _uint(data, iref[0], 1) == 0 else 4
        for kind, at, _ in boxes(data, iref[0] + 4, iref[1]):
            if kind in _DEPENDENT:
                meta.dependent.add(_uint(data, at, id_size))
    if iprp := box(data, children, end, b"iprp"):
        _sizes(data, *iprp, meta.sizes)
    if iloc := box(data, children, end, b"iloc"):
        _locations(data, *iloc, meta.extents)
    return meta


def _items(data: bytes, start: int, end: int, items: dict[int, tuple[bytes, bool]]) -> None:
    """The item information entries (``infe`` version 2 or 3; earlier ones carry no item type)."""
    first = start + (6 if _uint(data, start, 1) == 0 else 8)  # version, flags and the entry count
    for _, at, stop in boxes(data, first, end, b"infe"):
        version, hidden = _uint(data, at, 1), bool(_uint(data, at + 3, 1) & 1)
        id_size = 2 if version == 2 else 4
        if version in (2, 3) and at + 4 + id_size + 6 <= stop:
            kind = data[at + 4 + id_size + 2 : at + 4 + id_size + 6]
            items[_uint(data, at + 4, id_size)] = (kind, hidden)


def _sizes(data: bytes, start: int, end: int, sizes: dict[int, tuple[int, int]]) -> None:
    """Each item's ``ispe``, through the item property associations (``ipma``) into the properties (``ipco``)."""
    ipco, ipma = box(data, start, end, b"ipco"), box(data, start, end, b"ipma")
    if ipco is None or ipma is None:
        return
    properties = [(kind, at) for kind, at, _ in boxes(data, *ipco)]
    version, wide = _uint(data, ipma[0], 1), _uint(data, ipma[0] + 3, 1) & 1
    id_size, index_size = (2 if version == 0 else 4), (2 if wide else 1)
    at, stop = ipma[0] + 8, ipma[1]
    for _ in range(_uint(data, ipma[0] + 4, 4)):
        if at + id_size + 1 > stop:
            return
        item, count = _uint(data, at, id_size), _uint(data, at + id_size, 1)
        at += id_size + 1
        for _ in range(count):
            index = _uint(data, at, index_size) & (0x7FFF if wide else 0x7F)  # the top bit: "essential"
            at += index_size
            if 0 < index <= len(properties) and properties[index - 1][0] == b"ispe":
                payload = properties[index - 1][1]
                sizes.setdefault(item, (_uint(data, payload + 4, 4), _uint(data, payload + 8, 4)))


def _locations(data: bytes, start: int, end: int, extents: dict[int, list[tuple[int, int]]]) -> None:
    """The file extents of each item (``iloc``): construction method 0 (offsets in this file) only; data in the
    meta box itself (``idat``) or in another item is not in the file's extents."""
    version, sizes, more_sizes = _uint(data, start, 1), _uint(data, start + 4, 1), _uint(data, start + 5, 1)
    offset_size, length_size = sizes >> 4, sizes & 15
    base_size, index_size = more_sizes >> 4, (more_sizes & 15 if version in (1, 2) else 0)
    id_size = 4 if version == 2 else 2
    at = start + 6 + id_size
    for _ in range(_uint(data, start + 6, id_size)):
        if at + id_size + 4 > end:
            return
        item = _uint(data, at, id_size)
        at += id_size
        method = _uint(data, at, 2) & 15 if version in (1, 2) else 0
        at += 2 if version in (1, 2) else 0
        local = method == 0 and _uint(data, at, 2) == 0  # data reference 0: this file
        base = _uint(data, at + 2, base_size)
        count = _uint(data, at + 2 + base_size, 2)
        at += 4 + base_size
        spans = []
        for _ in range(count):
            at += index_size
            spans.append((base + _uint(data, at, offset_size), _uint(data, at + offset_size, length_size)))
            at += offset_size + length_size
        if local and at <= end:
            extents[item] = spans


def images(data: bytes) -> int:
    """The top-level images of a HEIF (``Meta.images``); 0 when its meta box is not whole in ``data``."""
    found = meta_box(data)
    return parse(data, *found).images() if found else 0


def check_coded_size(data: bytes, max_pixels: int) -> None:
    """Refuse a HEIF whose primary image is coded with more than ``max_pixels`` pixels. libheif decodes the
    coded size (``ispe``) and crops it after (``clap``), so the size Pillow reports may be smaller."""
    found = meta_box(data)
    size = parse(data, *found).primary_size() if found else None
    if size and size[0] * size[1] > max_pixels:
        raise TooManyPixels(f"the HEIF image is coded at {size[0]}x{size[1]}, more than {max_pixels} pixels")


@cache
def register() -> None:
    """Register pillow-heif's HEIF reader with Pillow, once, on the first HEIF (never at a cold start).

    Thumbnails, depth and auxiliary images are left out of what it reads: the pipeline decodes the primary
    image, and a thumbnail is never taken for it. libheif applies the image's transformations (``irot``,
    ``imir``, ``clap``) while decoding, and pillow-heif resets the EXIF orientation, which HEIF defines
    as informative only: the decoded image is upright, and no orientation is left to apply.
    """
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
