"""A contact sheet: each original beside its renditions, with sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

ROW_HEIGHT = 220
PAD = 12
CAPTION = 18


def contact_sheet(originals: Sequence[Path], out_dir: Path, target: Path) -> Path:
    rows: list[list[tuple[Image.Image, str]]] = []
    for original in originals:
        cells: list[tuple[Image.Image, str]] = []
        with Image.open(original) as img:
            cells.append((_thumb(img), f"{original.name} {img.width}x{img.height}"))
        folder = out_dir / original.name
        for path in sorted(folder.glob("*w.*"), key=lambda p: -int(p.name.split("w.")[0])):
            with Image.open(path) as img:
                cells.append((_thumb(img), f"{path.name} {path.stat().st_size // 1024} KiB"))
        rows.append(cells)
    width = max((sum(c[0].width + PAD for c in row) + PAD for row in rows), default=PAD)
    height = len(rows) * (ROW_HEIGHT + CAPTION + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for row in rows:
        x = PAD
        for thumb, caption in row:
            sheet.paste(thumb, (x, y))
            draw.text((x, y + ROW_HEIGHT + 2), caption, fill=(40, 40, 40))
            x += thumb.width + PAD
        y += ROW_HEIGHT + CAPTION + PAD
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    sheet.save(partial, "JPEG", quality=85)
    partial.replace(target)
    return target


def _thumb(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img, mask=img.getchannel("A"))
        img = base
    img = img.convert("RGB")
    width = max(1, round(img.width * ROW_HEIGHT / img.height))
    return img.resize((width, ROW_HEIGHT), Image.Resampling.LANCZOS)
