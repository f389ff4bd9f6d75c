"""Screenshots as a screen shows text: anti-aliased TrueType glyphs drawn by Pillow, saved by
Pillow's PNG writer (the zlib settings real screenshot tools use).

The cell renderer (``png.py``) draws 1-bit glyphs that deflate far better than real text
rendering does; this one draws the same lines with DejaVu Sans Mono (Debian package
``fonts-dejavu-core``) at a screen's size, with a window's title bar.
"""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

from .png import THEMES

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_SIZE = 13
LINE_H = 17


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT, FONT_SIZE)


def render_text_png(lines: list[str], *, theme: str, width: int = 1280, height: int = 800) -> bytes:
    """A PNG of ``lines`` in ``theme``'s colours under a title bar, as Pillow saves it."""
    bg, fg = THEMES[theme]
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 28), fill=(60, 60, 64) if sum(bg) < 300 else (222, 222, 226))
    for i, colour in enumerate(((255, 95, 87), (255, 189, 46), (39, 201, 63))):
        draw.ellipse((12 + 20 * i, 8, 24 + 20 * i, 20), fill=colour)
    y = 36
    for line in lines:
        if y + LINE_H > height:
            break
        draw.text((10, y), line, font=_font(), fill=fg)
        y += LINE_H
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
