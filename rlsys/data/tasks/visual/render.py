"""Draw a scene description (scene.py) with PIL; deterministic for a given Pillow / FreeType build.

Shapes and bars are filled without anti-aliasing, so every pixel of a shape has its exact palette colour
(the tests count blobs by colour); text uses Pillow's bundled scalable font (`ImageFont.load_default(size)`).
PNG bytes carry no metadata, so the same scene always gives byte-identical files.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from rlsys.data.tasks.visual.scene import ALL_COLORS, GRID, px


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int) -> int:
    left, _, right, _ = font(size).getbbox(text)
    return int(right - left)


def render(scene: dict) -> Image.Image:
    width, height = scene["size"]
    image = Image.new("RGB", (width, height), ALL_COLORS[scene["background"]])
    draw = ImageDraw.Draw(image)
    _DRAW[scene["kind"]](draw, scene)
    return image


def png_bytes(scene: dict) -> bytes:
    buf = io.BytesIO()
    render(scene).save(buf, format="PNG")
    return buf.getvalue()


def _shapes(draw: ImageDraw.ImageDraw, scene: dict) -> None:
    for obj in scene["objects"]:
        x, y = obj["center"]
        r = obj["radius"]
        fill = ALL_COLORS[obj["color"]]
        if obj["shape"] == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        elif obj["shape"] == "square":
            h = round(r * 0.85)
            draw.rectangle([x - h, y - h, x + h, y + h], fill=fill)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


def _expression(draw: ImageDraw.ImageDraw, scene: dict) -> None:
    text = f"{scene['a']} {scene['op']} {scene['b']}"
    draw.text(
        tuple(scene["center"]),
        text,
        fill=ALL_COLORS[scene["color"]],
        font=font(scene["font_size"]),
        anchor="mm",
    )


def _bar_chart(draw: ImageDraw.ImageDraw, scene: dict) -> None:
    size = scene["size"][0]
    x0, y0, x1, y1 = scene["plot"]
    ink = ALL_COLORS["black"]
    small = font(px(11, size))
    draw.text(((x0 + x1) // 2, px(4, size)), scene["title"], fill=ink, font=font(px(13, size)), anchor="mt")
    for tick in range(0, scene["y_max"] + 1, scene["y_step"]):
        y = bar_top(scene, tick)
        if tick:
            draw.line([(x0 + 1, y), (x1, y)], fill=GRID)
        draw.line([(x0 - px(3, size), y), (x0, y)], fill=ink)
        draw.text((x0 - px(5, size), y), str(tick), fill=ink, font=small, anchor="rm")
    for i, bar in enumerate(scene["bars"]):
        left, right = bar_span(scene, i)
        if bar["value"]:
            draw.rectangle(
                [left, bar_top(scene, bar["value"]), right, y1 - 1], fill=ALL_COLORS[scene["color"]]
            )
        draw.text(((left + right) // 2, y1 + px(4, size)), bar["label"], fill=ink, font=small, anchor="mt")
    draw.line([(x0, y0), (x0, y1)], fill=ink)
    draw.line([(x0, y1), (x1, y1)], fill=ink)


def bar_top(scene: dict, value: int) -> int:
    """Pixel row of `value` on the chart's y-axis."""
    _, y0, _, y1 = scene["plot"]
    return y1 - round(value * (y1 - y0) / scene["y_max"])


def bar_span(scene: dict, index: int) -> tuple[int, int]:
    """First and last pixel column of bar `index`."""
    x0, _, x1, _ = scene["plot"]
    slot = (x1 - x0) / len(scene["bars"])
    centre = x0 + slot * (index + 0.5)
    half = slot * 0.3
    return round(centre - half), round(centre + half)


def _rectangle(draw: ImageDraw.ImageDraw, scene: dict) -> None:
    size = scene["size"][0]
    x0, y0, x1, y1 = scene["box"]
    ink = ALL_COLORS[scene["color"]]
    draw.rectangle([x0, y0, x1, y1], outline=ink, width=px(2, size))
    label = font(px(14, size))
    black = ALL_COLORS["black"]
    draw.text(
        ((x0 + x1) // 2, y1 + px(5, size)),
        f"{scene['width']} {scene['unit']}",
        fill=black,
        font=label,
        anchor="mt",
    )
    draw.text(
        (x1 + px(5, size), (y0 + y1) // 2),
        f"{scene['height']} {scene['unit']}",
        fill=black,
        font=label,
        anchor="lm",
    )


def _right_triangle(draw: ImageDraw.ImageDraw, scene: dict) -> None:
    size = scene["size"][0]
    corner, end_h, end_v = (tuple(v) for v in scene["vertices"])
    ink = ALL_COLORS[scene["color"]]
    draw.polygon([corner, end_h, end_v], outline=ink, width=px(2, size))
    # The right-angle mark: a small square in the corner, on the inside.
    m = px(10, size)
    sx = 1 if end_h[0] > corner[0] else -1
    draw.line(
        [(corner[0] + sx * m, corner[1]), (corner[0] + sx * m, corner[1] - m), (corner[0], corner[1] - m)],
        fill=ink,
        width=1,
    )
    label = font(px(14, size))
    black = ALL_COLORS["black"]
    h_leg, v_leg = scene["legs"]
    draw.text(
        ((corner[0] + end_h[0]) // 2, corner[1] + px(5, size)),
        f"{h_leg} {scene['unit']}",
        fill=black,
        font=label,
        anchor="mt",
    )
    # The vertical leg's label sits outside the triangle, on the side away from the horizontal leg.
    x = corner[0] - sx * px(5, size)
    draw.text(
        (x, (corner[1] + end_v[1]) // 2),
        f"{v_leg} {scene['unit']}",
        fill=black,
        font=label,
        anchor="rm" if sx > 0 else "lm",
    )


_DRAW = {
    "shapes": _shapes,
    "expression": _expression,
    "bar_chart": _bar_chart,
    "rectangle": _rectangle,
    "right_triangle": _right_triangle,
}
