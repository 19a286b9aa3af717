"""The class names a task preset predicts, and which of a run's classes take over which preset class's weights.

Standard lists are given by name (`model.preset_classes: coco80 | coco91 | voc21 | imagenet1k`); anything else is a
file or a comma-separated list (the same specs `data.classes` reads). Names match case-insensitively, with "_" and
"-" read as spaces, so "traffic_light" finds "traffic light" and "background" finds torchvision's "__background__".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from kerascv_tl.backbones.weights import WeightsError

__all__ = ["PresetError", "STANDARD_CLASS_LISTS", "match_classes", "preset_class_names"]


class PresetError(WeightsError):
    """A task preset cannot be loaded or adapted to the run's classes."""


_COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle "
    "wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave "
    "oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
# COCO's category ids 1..90 with the ids the detection set never used as "N/A", background at 0: the 91 outputs of
# torchvision's COCO detectors and of the KerasHub presets converted from them.
_COCO91_GAPS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
_VOC21 = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
    "pottedplant sheep sofa train tvmonitor"
)


def _coco91() -> tuple[str, ...]:
    names = iter(n.replace("_", " ") for n in _COCO80.split())
    return ("__background__",) + tuple("N/A" if i in _COCO91_GAPS else next(names) for i in range(1, 91))


STANDARD_CLASS_LISTS: dict[str, tuple[str, ...]] = {
    "coco80": tuple(n.replace("_", " ") for n in _COCO80.split()),
    "coco91": _coco91(),
    "voc21": tuple(_VOC21.split()),
}


def normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()


def preset_class_names(spec: str | None, handle: str, num_classes: int) -> tuple[list[str] | None, str]:
    """(the preset's class names, where they came from): `spec` (a standard list's name, a file or "a,b,c"), else
    the `class_names` of a local preset folder's metadata.json; (None, why) when neither names them."""
    if spec:
        if spec.casefold() == "imagenet1k":  # the 1000 ImageNet classes of KerasHub's image classifier presets
            from keras_hub.utils import imagenet_id_to_name

            names, where = [imagenet_id_to_name(i) for i in range(1000)], "the standard list imagenet1k"
        elif spec.casefold() in STANDARD_CLASS_LISTS:
            names, where = list(STANDARD_CLASS_LISTS[spec.casefold()]), f"the standard list {spec}"
        else:
            from kerascv_tl.data.readers.class_names import read_class_names

            names, where = read_class_names(spec)[0], f"model.preset_classes {spec}"
    else:
        metadata = Path(handle).expanduser() / "metadata.json"
        if not metadata.is_file():
            return None, "the preset names no classes (no model.preset_classes, no class_names in its metadata.json)"
        try:
            names = json.loads(metadata.read_text(encoding="utf-8")).get("class_names")
        except (OSError, json.JSONDecodeError) as e:
            raise PresetError(f"{metadata}: cannot read: {e}") from None
        if names is None:
            return None, f"{metadata} has no class_names and model.preset_classes is not set"
        where = str(metadata)
    if len(names) != num_classes:
        raise PresetError(
            f"{where} lists {len(names)} classes but preset {handle} predicts {num_classes}; "
            "set model.preset_classes to the preset's own list"
        )
    return [str(n) for n in names], where


def match_classes(
    new_names: Sequence[str], preset_names: Sequence[str] | None, class_map: Mapping[str, str]
) -> list[tuple[int, int]]:
    """(new index, preset index) for every run class whose name (or `class_map[name]`) is a preset class."""
    unknown = sorted(set(map(normalise, class_map)) - set(map(normalise, new_names)))
    if unknown:
        raise PresetError(f"model.class_map names classes the data does not have: {', '.join(unknown)}")
    if preset_names is None:
        if class_map:
            raise PresetError("model.class_map needs the preset's class names: set model.preset_classes")
        return []
    index = {}
    for i, name in enumerate(preset_names):
        index.setdefault(normalise(name), i)  # "N/A" repeats: the first is as good as any, none is matched
    mapped = {normalise(k): v for k, v in class_map.items()}
    pairs = []
    for i, name in enumerate(new_names):
        wanted = mapped.get(normalise(name), name)
        if normalise(wanted) in index and normalise(wanted) != "n/a":
            pairs.append((i, index[normalise(wanted)]))
        elif normalise(name) in mapped:
            raise PresetError(
                f"model.class_map maps {name!r} to {wanted!r}, which is not a preset class "
                f"({', '.join(preset_names[:12])}{', ...' if len(preset_names) > 12 else ''})"
            )
    return pairs
