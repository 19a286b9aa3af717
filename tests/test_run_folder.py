"""`default_run_dir`: where a run goes when `--output` is not given."""

from __future__ import annotations

import json

from kerascv_tl.config import load_config
from kerascv_tl.run_folder import default_run_dir


def test_default_run_dir_names_the_recipe_and_never_a_folder_named_config(tmp_path):
    config = load_config(None, [f"output_dir={tmp_path / 'runs'}", "task=detection", "recipe=feature_extraction"])
    assert default_run_dir(config, None) == tmp_path / "runs" / "detection_feature_extraction"
    assert default_run_dir(config, "recipes/mine.yaml") == tmp_path / "runs" / "mine"
    # a finished run's config.yaml, edited and trained again: beside the run, not over it
    run = tmp_path / "runs" / "flowers"
    run.mkdir(parents=True)
    (run / "class_names.json").write_text(json.dumps(["a", "b"]))
    (run / "config.yaml").write_text(config.to_yaml())
    assert default_run_dir(config, str(run / "config.yaml")) == tmp_path / "runs" / "flowers_rerun"
    # a recipe that merely happens to be called config.yaml keeps its name
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    assert default_run_dir(config, str(tmp_path / "config.yaml")) == tmp_path / "runs" / "config"
