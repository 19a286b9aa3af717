"""Which task and reader a data folder is laid out for: `kerascv-tl train --data DIR` with no YAML.

The layouts recognised, in one folder:
  * class folders (`cat/*.jpg`, `dog/*.jpg`)                  -> classification, `folder`
  * `images/` + `masks/` (matched by file stem)               -> segmentation, `masks`
  * `Annotations/*.xml` (+ `JPEGImages/`), Pascal VOC         -> detection, `voc`
  * `images/` + `labels/*.txt` (+ a `names:` YAML), YOLO      -> detection, `yolo`
  * a COCO instances JSON (`_annotations.coco.json`, `annotations/instances_*.json`, ...) -> detection, `coco`
  * `PNGImages/` + `PedMasks/` (Penn-Fudan)                   -> detection or segmentation: `--task` decides
A root holding `train/` and `val/` (or `valid/`, `validation/`; `test/` when there is no val) is split by them,
never read as classes named train and val; both halves must have the same layout. Anything else, or two
layouts at once, is refused with a message that says what was found and what would be recognised.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.files import image_files

__all__ = ["DataLayout", "detect_layout"]

TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "valid", "validation")
TEST_NAMES = ("test",)
_YOLO_NAME_FILES = ("data.yaml", "dataset.yaml", "data.yml")
_RECOGNISED = (
    "class folders (one sub-folder of images per class); images/ + masks/ (segmentation); Annotations/ + "
    "JPEGImages/ (Pascal VOC); images/ + labels/ with a names YAML (YOLO); a COCO instances JSON; each either "
    "directly or inside train/ and val/ (or valid/, test/)"
)


@dataclass(frozen=True)
class DataLayout:
    """A recognised layout: the task, the reader (`data.format`) and the config values that read it."""

    task: str
    format: str
    train: str
    val: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # further data.* keys, e.g. classes, image_root
    description: str = ""

    def overrides(self) -> list[str]:
        """`key=value` config overrides (as `--set` takes them) that train on this layout."""
        values = {"task": self.task, "data.format": self.format, "data.train": self.train, "data.val": self.val}
        values.update({f"data.{key}": value for key, value in self.data.items()})
        return [f"{key}={_yaml_scalar(value)}" for key, value in values.items()]


def detect_layout(path: str | os.PathLike, task: str | None = None) -> DataLayout:
    """The layout of `path` (a folder, a COCO JSON or a classification CSV); `task` picks between layouts that
    fit several tasks (Penn-Fudan) and must agree with the one found otherwise. DataError when nothing, or more
    than one thing, is recognised."""
    if not Path(path).exists():
        raise DataError(f"{path}: no such file or folder", path=path)
    root = Path(path).resolve()  # the run's config.yaml must work from any folder
    if root.is_file():
        return _single(_file_layouts(root), root, task)
    splits = _split_folders(root)
    if "train" not in splits:
        if "val" in splits or "test" in splits:
            held = splits.get("val") or splits.get("test")
            raise DataError(f"{root}: has {held.name}/ but no train/ folder to train on", path=root)
        return _single(_folder_layouts(root), root, task)
    others = [p.name for p in _subfolders(root) if p not in splits.values() and image_files(p)]
    if others:
        raise DataError(
            f"{root}: holds split folders ({', '.join(p.name for p in splits.values())}) and also image folders "
            f"{others}; move those into train/ or val/, or point --data at one of them",
            path=root,
        )
    train = _single(_folder_layouts(splits["train"]), splits["train"], task)
    held_out = splits.get("val") or splits.get("test")
    if held_out is None:
        return train
    if train.val is not None:
        raise DataError(f"{splits['train']}: holds its own validation split and {held_out.name}/ is one too")
    if train.format == "folder":  # a validation class folder may hold only some classes
        val = DataLayout("classification", "folder", str(held_out), description="class folders")
    else:
        found = _folder_layouts(held_out)
        same = [layout for layout in found if (layout.task, layout.format) == (train.task, train.format)]
        if not same:
            held = " or ".join(layout.description for layout in found) or "no recognised layout"
            raise DataError(
                f"{root}: train/ is {train.description} but {held_out.name}/ is {held}; both need one layout",
                path=root,
            )
        val = same[0]
    note = "" if held_out.name.lower() not in TEST_NAMES else " (no val/ folder: test/ validates)"
    if "val" in splits and "test" in splits:
        note = f" ({splits['test'].name}/ left for kerascv-tl evaluate)"
    data = dict(train.data)
    if train.format == "coco" and "image_root" in val.data:
        data["val_image_root"] = val.data["image_root"]
    return DataLayout(
        train.task,
        train.format,
        train.train,
        val.train,
        data,
        f"{train.description}; validation: {held_out.name}/{note}",
    )


def _single(found: list[DataLayout], where: Path, task: str | None) -> DataLayout:
    if task is not None:
        matching = [layout for layout in found if layout.task == task]
        if found and not matching:
            kinds = "; ".join(f"{layout.description} ({layout.task})" for layout in found)
            raise DataError(f"{where}: --task {task} asked, but the folder holds {kinds}", path=where)
        found = matching
    if len(found) == 1:
        return found[0]
    if not found:
        images = image_files(where) if where.is_dir() else []
        unlabelled = f" ({len(images)} images but no labels)" if images else ""
        raise DataError(f"{where}: no data layout recognised{unlabelled}; expected {_RECOGNISED}", path=where)
    kinds = "; ".join(f"{layout.description} ({layout.task})" for layout in found)
    raise DataError(
        f"{where}: more than one layout fits: {kinds}; choose with --task, or write a recipe YAML", path=where
    )


def _split_folders(root: Path) -> dict[str, Path]:
    splits = {}
    for folder in _subfolders(root):
        name = folder.name.lower()
        for kind, names in (("train", TRAIN_NAMES), ("val", VAL_NAMES), ("test", TEST_NAMES)):
            if name in names and kind not in splits:
                splits[kind] = folder
    return splits


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _file_layouts(path: Path) -> list[DataLayout]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [DataLayout("classification", "csv", str(path), description=f"a CSV of labelled images ({path.name})")]
    if suffix == ".json" and _is_coco(path):
        return [DataLayout("detection", "coco", str(path), description=f"COCO annotations ({path.name})")]
    raise DataError(f"{path}: not a folder, a COCO instances JSON or a classification CSV", path=path)


def _folder_layouts(folder: Path) -> list[DataLayout]:
    """Every structured layout found in `folder`; class folders only when no structured one is."""
    found = []
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        found.append(DataLayout("segmentation", "masks", str(folder), description="images/ + masks/"))
    if (folder / "Annotations").is_dir() and any((folder / "Annotations").glob("*.xml")):
        found.append(DataLayout("detection", "voc", str(folder), description="Pascal VOC (Annotations/)"))
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        found.append(_yolo_layout(folder))
    if (folder / "PNGImages").is_dir() and (folder / "PedMasks").is_dir():
        for task in ("detection", "segmentation"):
            found.append(DataLayout(task, "pennfudan", str(folder), description="Penn-Fudan (PNGImages/ + PedMasks/)"))
    found.extend(_coco_layouts(folder))
    if found:
        return found
    classes = [p for p in _subfolders(folder) if image_files(p)]
    if len(classes) >= 2:
        names = ", ".join(p.name for p in classes[:5]) + (", ..." if len(classes) > 5 else "")
        description = f"class folders ({len(classes)} classes: {names})"
        return [DataLayout("classification", "folder", str(folder), description=description)]
    return []


def _yolo_layout(folder: Path) -> DataLayout:
    """Ultralytics (`images/train`, `labels/train`, split inside) or flat (`images/`, `labels/`) YOLO."""
    images = folder / "images"
    inner = _split_folders(images)
    train, val = (images, None)
    if "train" in inner:
        held_out = inner.get("val") or inner.get("test")
        train, val = inner["train"], held_out
    names = _yolo_names_file(folder)
    if names is None:
        raise DataError(
            f"{folder}: YOLO labels found, but no class names: add a data.yaml with `names:` (a list, or "
            f"{{index: name}}) here or in the folder above, or a classes.txt with one name per line",
            path=folder,
        )
    return DataLayout(
        "detection",
        "yolo",
        str(train),
        str(val) if val is not None else None,
        {"classes": str(names)},
        f"YOLO (images/ + labels/, names in {names.name})",
    )


def _yolo_names_file(folder: Path) -> Path | None:
    for where in (folder, folder.parent):
        for name in (*_YOLO_NAME_FILES, "classes.txt", "obj.names"):
            if (where / name).is_file():
                return where / name
    return None


def _coco_layouts(folder: Path) -> list[DataLayout]:
    """COCO JSONs directly in `folder` (Roboflow's `_annotations.coco.json`, `annotations.json`) or in
    `folder/annotations/` (`instances_train2017.json` + `instances_val2017.json`, images in `train2017/`)."""
    direct = [p for p in sorted(folder.glob("*.json")) if _is_coco(p)]
    if direct:
        if len(direct) > 1:
            names = ", ".join(p.name for p in direct)
            raise DataError(f"{folder}: several COCO JSONs ({names}); point --data at one of them", path=folder)
        return [DataLayout("detection", "coco", str(direct[0]), description=f"COCO ({direct[0].name})")]
    candidates = [p for p in sorted((folder / "annotations").glob("*.json")) if _is_coco(p)]
    if not candidates:
        return []
    train = [p for p in candidates if any(n in p.stem.lower() for n in TRAIN_NAMES)] or candidates[:1]
    val = [p for p in candidates if any(n in p.stem.lower() for n in VAL_NAMES)]
    data = {}
    for key, json_path in (("image_root", train[0]), ("val_image_root", val[0] if val else None)):
        images = _coco_image_folder(folder, json_path) if json_path is not None else None
        if images is not None:
            data[key] = str(images)
    description = f"COCO (annotations/{train[0].name}" + (f" + {val[0].name})" if val else ")")
    return [DataLayout("detection", "coco", str(train[0]), str(val[0]) if val else None, data, description)]


def _coco_image_folder(root: Path, json_path: Path) -> Path | None:
    """`instances_train2017.json` -> `root/train2017/`, else `root/images/train2017/`, else `root/images/`, else
    None (the JSON's folder)."""
    stem = json_path.stem
    suffix = stem.split("_", 1)[1] if "_" in stem else stem
    for candidate in (root / suffix, root / "images" / suffix, root / "images"):
        if candidate.is_dir():
            return candidate
    return None


def _is_coco(path: Path) -> bool:
    """A JSON object with `images` and `annotations` lists; other JSONs (class lists, metadata) are not."""
    if path.name.lower() in ("classes.json",):
        return False
    try:
        with path.open("rb") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data


def _yaml_scalar(value: str | None) -> str:
    """A value for `--set key=value` (parsed as YAML): None -> null; strings quoted so that `yes`, `1e3` or a
    path with `: ` stay strings."""
    return "null" if value is None else json.dumps(str(value))
