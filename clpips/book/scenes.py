"""Procedural scenes for the simulated study: six attributes play the role of
prompt words, and a scene renders to a real RGB image.

A scene is one object on a plain background. Its attributes (``ATTRIBUTES``)
are categorical; on top of them each rendering has a small random *jitter*
(position, size, texture phase), the way two generations from the same prompt
still differ. Rendering is pure Pillow/numpy and deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "size": ("small", "medium", "large"),
    "colour": ("red", "green", "blue", "yellow", "purple", "orange"),
    "texture": ("solid", "striped", "dotted", "checkered"),
    "shape": ("circle", "square", "triangle", "star", "cross"),
    "position": ("left", "centre", "right", "top", "bottom"),
    "background": ("white", "grey", "black", "sky-blue", "sand", "mint"),
}
NAMES = tuple(ATTRIBUTES)

_RGB = {"red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 90, 200), "yellow": (240, 200, 30),
        "purple": (148, 80, 189), "orange": (255, 127, 14), "white": (250, 250, 250), "grey": (150, 150, 150),
        "black": (25, 25, 25), "sky-blue": (170, 210, 240), "sand": (225, 205, 160), "mint": (190, 235, 200)}
_CENTRE = {"left": (0.28, 0.5), "centre": (0.5, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28),
           "bottom": (0.5, 0.72)}
_RADIUS = {"small": 0.11, "medium": 0.17, "large": 0.24}
_WHERE = {"left": "on the left", "centre": "in the centre", "right": "on the right", "top": "at the top",
          "bottom": "at the bottom"}


@dataclass(frozen=True)
class Scene:
    """Attribute values (one per name in ``NAMES``) and the rendering jitter."""

    values: tuple[str, ...]
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  #: dx, dy, scale, texture phase

    def __getitem__(self, attribute: str) -> str:
        return self.values[NAMES.index(attribute)]

    def prompt(self) -> str:
        """The scene as a prompt, e.g. 'a large red striped circle on the left, sky-blue background'."""
        s = dict(zip(NAMES, self.values))
        return (f"a {s['size']} {s['colour']} {s['texture']} {s['shape']} {_WHERE[s['position']]}, "
                f"{s['background']} background")


def random_jitter(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Jitter of one rendering: offsets of +-6 % of the image, scale +-10 %, a texture phase."""
    dx, dy = rng.uniform(-0.06, 0.06, size=2)
    return (float(dx), float(dy), float(rng.uniform(0.9, 1.1)), float(rng.uniform(0, 1)))


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx + r * np.sin(a), cy - r * np.cos(a)) for a in np.radians([0, 120, 240])]
    if shape == "star":
        return [(cx + (r if i % 2 == 0 else 0.45 * r) * np.sin(a), cy - (r if i % 2 == 0 else 0.45 * r) * np.cos(a))
                for i, a in enumerate(np.radians(np.arange(10) * 36))]
    if shape == "cross":
        w = r / 3
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
                (cx - r, cy - w), (cx - w, cy - w)]
    raise ValueError(f"unknown shape {shape!r}")


@lru_cache(maxsize=256)
def _pattern(texture: str, size: int, period: int, shift: int) -> Image.Image:
    """``size x size`` mask (mode "L", 255 = darker shade) of a texture; cached, do not modify."""
    y, x = np.mgrid[0:size, 0:size]
    if texture == "striped":
        pattern = ((x + y + shift) // period) % 2 == 1
    elif texture == "checkered":
        pattern = (((x + shift) // period) + ((y + shift) // period)) % 2 == 1
    elif texture == "dotted":
        pattern = ((x + shift) % period - period / 2) ** 2 + ((y + shift) % period - period / 2) ** 2 < (period / 3) ** 2
    else:
        pattern = np.zeros((size, size), dtype=bool)
    return Image.fromarray(pattern.astype(np.uint8) * 255)


def _texture(texture: str, colour: tuple[int, int, int], size: int, phase: float) -> Image.Image:
    """``size x size`` RGB fill of the object: colour, patterned with a darker shade."""
    period = max(size // 12, 4)
    dark = tuple(int(c * 0.5) for c in colour)
    return Image.composite(Image.new("RGB", (size, size), dark), Image.new("RGB", (size, size), colour),
                           _pattern(texture, size, period, int(phase * period)))


def render(scene: Scene, size: int = 128) -> Image.Image:
    """Draw ``scene`` as a ``size x size`` RGB image (shape outline supersampled 2x)."""
    s = dict(zip(NAMES, scene.values))
    dx, dy, scale, phase = scene.jitter
    cx, cy = (_CENTRE[s["position"]][0] + dx) * 2 * size, (_CENTRE[s["position"]][1] + dy) * 2 * size
    r = _RADIUS[s["size"]] * scale * 2 * size
    mask = Image.new("L", (2 * size, 2 * size), 0)
    draw = ImageDraw.Draw(mask)
    if s["shape"] == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_outline(s["shape"], cx, cy, r), fill=255)
    background = Image.new("RGB", (size, size), _RGB[s["background"]])
    fill = _texture(s["texture"], _RGB[s["colour"]], size, phase)
    return Image.composite(fill, background, mask.reduce(2))
