"""The demo's contact sheet, on real images: one row per original, the original then its renditions, widest first."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from imgpipe.contact_sheet import CAPTION, PAD, ROW_HEIGHT, contact_sheet

RED = (220, 0, 0)
BLUE = (0, 0, 220)


def _save(path: Path, size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def _near(image: Image.Image, x: int, y: int, colour: tuple[int, int, int]) -> bool:
    pixel = image.getpixel((x, y))
    assert isinstance(pixel, tuple)
    return all(abs(int(got) - want) < 40 for got, want in zip(pixel, colour, strict=True))


def test_each_original_is_a_row_with_its_renditions(tmp_path: Path) -> None:
    red = _save(tmp_path / "in" / "red.jpg", (880, 440), RED)
    blue = _save(tmp_path / "in" / "blue.png", (300, 600), (*BLUE, 255), "RGBA")
    _save(tmp_path / "out" / "red.jpg" / "640w.jpg", (640, 320), RED)
    _save(tmp_path / "out" / "red.jpg" / "320w.webp", (320, 160), RED)
    target = contact_sheet([red, blue], tmp_path / "out", tmp_path / "out" / "sheet.jpg")

    assert target == tmp_path / "out" / "sheet.jpg"
    assert not list(target.parent.glob("*.partial")), "written whole, then renamed"
    with Image.open(target) as sheet:
        # Row 1: three thumbs 2:1, ROW_HEIGHT high; row 2: one thumb 1:2.
        assert sheet.size == (PAD + 3 * (2 * ROW_HEIGHT + PAD), PAD + 2 * (ROW_HEIGHT + CAPTION + PAD))
        rgb = sheet.convert("RGB")
    for k in range(3):
        assert _near(rgb, PAD + k * (2 * ROW_HEIGHT + PAD) + ROW_HEIGHT, PAD + ROW_HEIGHT // 2, RED), k
    second_row = 2 * PAD + ROW_HEIGHT + CAPTION + ROW_HEIGHT // 2
    assert _near(rgb, PAD + ROW_HEIGHT // 4, second_row, BLUE)
    assert _near(rgb, PAD + ROW_HEIGHT // 2 + PAD + 5, second_row, (245, 245, 245)), "the background beside it"
