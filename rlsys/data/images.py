"""Images named by data rows: resolve each entry of a row's `images` to the absolute path of a readable file.

A row's `images` (rlsys.data.schema) holds, per image, a path relative to the data file (or absolute), or
image content from a `datasets` Image column: bytes, a `{"bytes", "path"}` struct or a decoded PIL image.
Paths are made absolute and the file is checked (it exists, PIL identifies it and `Image.verify()` passes:
PNG chunk checksums, truncation); content is checked the same way and written once, content-addressed,
under `<cache_dir>/rlsys-images/`. A bad entry raises `DataError("<file> row <n>: field 'images[i]' ...")`,
which the loader reports or skips like any other bad row.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

from rlsys.data.schema import DataError

IMAGE_CACHE = "rlsys-images"


def _check_image(source: str | io.BytesIO) -> str:
    """The PIL format name of a readable image; raises what PIL raises for an unreadable one."""
    from PIL import Image

    with Image.open(source) as image:
        fmt = image.format or "PNG"
        image.verify()
    return fmt


def _store(blob: bytes, cache_dir: str) -> str:
    fmt = _check_image(io.BytesIO(blob))
    digest = hashlib.sha256(blob).hexdigest()[:24]
    path = Path(cache_dir) / IMAGE_CACHE / f"{digest}.{fmt.lower()}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        tmp.replace(path)
    return str(path)


def _pil_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def resolve_images(row: dict, data_path: str, where: str, cache_dir: str) -> dict:
    """`row` with `images` as absolute paths of readable image files (rows without images unchanged)."""
    if "images" not in row:
        return row
    base = Path(data_path).resolve().parent
    resolved = []
    for i, entry in enumerate(row["images"]):
        field = f"field 'images[{i}]'"
        if isinstance(entry, dict) and not isinstance(entry.get("bytes"), (bytes, bytearray)):
            entry = entry["path"]  # a datasets Image struct that only names a file
        if isinstance(entry, str):
            path = Path(entry) if Path(entry).is_absolute() else base / entry
            if not path.is_file():
                raise DataError(f"{where}: {field} names a missing image file {path}")
            try:
                _check_image(str(path))
            except Exception as exc:  # PIL raises many types for a broken file
                raise DataError(
                    f"{where}: {field} is not a readable image: {path} ({type(exc).__name__}: {exc})"
                ) from exc
            resolved.append(str(path))
            continue
        blob = entry["bytes"] if isinstance(entry, dict) else entry
        try:
            blob = bytes(blob) if isinstance(blob, (bytes, bytearray)) else _pil_bytes(blob)
            resolved.append(_store(blob, cache_dir))
        except Exception as exc:
            raise DataError(
                f"{where}: {field} holds image data that cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
    return {**row, "images": resolved}
