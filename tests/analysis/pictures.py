"""What the report tests check of an image file."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread


def assert_picture(path: Path) -> None:
    """A PNG that holds a drawing: some pixels far from white and a real spread of values."""
    image = imread(path)[..., :3]
    ink = (image.min(axis=-1) < 0.8).mean()
    assert ink > 0.01 and image.std() > 0.05, f"{path.name} looks blank (ink {ink:.4f})"
