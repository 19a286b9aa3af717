"""The recipes that ship inside the package (`kerascv_tl/recipes/*.yaml`), found by name.

`kerascv-tl train flowers_fine_tune` and `load_config("flowers_fine_tune")` read the packaged YAML, so a recipe
works from any folder after `pip install`. No TensorFlow import: listing recipes must stay instant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


@dataclass(frozen=True)
class PackagedRecipe:
    name: str
    path: Path
    summary: str  # the YAML's first comment line

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def packaged_recipes() -> list[PackagedRecipe]:
    """Every packaged recipe, sorted by name."""
    recipes = []
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "")
        recipes.append(PackagedRecipe(path.stem, path, first.lstrip("# ").strip()))
    return recipes


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A YAML file as given when it exists, else the packaged recipe of that name (`flowers_fine_tune`, with or
    without `.yaml`, also `recipes/flowers_fine_tune.yaml` as the docs of a clone wrote it); else the path as
    given, so that reading it reports the missing file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if path.parent in (Path("."), Path("recipes")):
        packaged = RECIPE_DIR / f"{name}.yaml"
        if packaged.is_file():
            return packaged
    return path
