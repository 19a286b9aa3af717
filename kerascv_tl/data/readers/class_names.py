"""Class-name specs for segmentation: a YAML/JSON file or a comma-separated list -> names and raw ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kerascv_tl.data.errors import DataError

__all__ = ["read_class_names"]


def read_class_names(spec: str) -> tuple[list[str], dict[int, int] | None]:
    """`spec` is a path to a YAML/JSON file or a comma-separated list of names.

    File content: a list of names (index = raw value), or a mapping {raw_id: name}, or a mapping with a
    "classes" (or "names") key holding either. Returns (names in raw-id order, raw_id -> contiguous index
    map, or None when the ids are already 0..N-1).
    """
    spec = os.fspath(spec)
    path = Path(spec)
    looks_like_path = path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in spec or os.sep in spec
    if path.is_file():
        raw, where = _load_names_file(path), str(path)
    elif looks_like_path:
        raise DataError(f"{path}: class-names file not found", path=path)
    else:
        raw, where = [name.strip() for name in spec.split(",")], "class names"
        if any(not name for name in raw):
            raise DataError(f"{where} {spec!r}: empty name in the comma-separated list")
    if isinstance(raw, dict) and not _is_id_mapping(raw):
        for key in ("classes", "names"):
            if key in raw:
                raw = raw[key]
                break
        else:
            raise DataError(
                f"{where}: expected a list of class names, an {{id: name}} mapping, or a 'classes:' "
                f"(or 'names:') entry holding one; got keys {list(raw)[:8]}",
                path=where,
            )
    return _names_and_ids(raw, where)


def _load_names_file(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the class-names file ({e})", path=path) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})", path=path) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e})", path=path) from None


def _as_id(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    return None


def _is_id_mapping(raw: dict) -> bool:
    return bool(raw) and all(_as_id(k) is not None for k in raw)


def _names_and_ids(raw, where: str) -> tuple[list[str], dict[int, int] | None]:
    if isinstance(raw, (list, tuple)):
        pairs = list(enumerate(raw))
    elif isinstance(raw, dict):
        if not _is_id_mapping(raw):
            raise DataError(f"{where}: class mapping keys must be integer mask values, got {list(raw)[:8]}", path=where)
        pairs = sorted((_as_id(k), v) for k, v in raw.items())
    else:
        raise DataError(
            f"{where}: class names must be a list or an {{id: name}} mapping, got {type(raw).__name__}", path=where
        )
    if not pairs:
        raise DataError(f"{where}: no class names", path=where)
    ids = [i for i, _ in pairs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: duplicate class ids {sorted({i for i in ids if ids.count(i) > 1})}", path=where)
    if ids[0] < 0:
        raise DataError(f"{where}: class ids must be >= 0, got {ids[0]}", path=where)
    names = []
    for raw_id, name in pairs:
        if name is None or isinstance(name, (dict, list)) or not str(name).strip():
            raise DataError(f"{where}: class {raw_id} has no usable name ({name!r})", path=where)
        names.append(str(name).strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{where}: duplicate class names {duplicates}", path=where)
    if ids == list(range(len(ids))):
        return names, None
    return names, {raw_id: index for index, raw_id in enumerate(ids)}
