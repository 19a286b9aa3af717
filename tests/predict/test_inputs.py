"""PATH arguments -> image files (files, folders, glob patterns), and inputs -> encoded images or a reason."""

import io

import bad_files
import numpy as np
from PIL import Image

from kerascv_tl.predict.inputs import encode_input, expand_paths


def _png(path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def test_files_folders_and_patterns_give_each_image_once_in_argument_order(tmp_path, monkeypatch):
    a = _png(tmp_path / "photos" / "a.png")
    b = _png(tmp_path / "photos" / "deep" / "b.PNG")
    c = _png(tmp_path / "more" / "c.png")
    _png(tmp_path / "photos" / ".hidden.png")
    _png(tmp_path / "photos" / ".cache" / "d.png")
    (tmp_path / "photos" / "notes.txt").write_text("not listed from a folder")
    monkeypatch.chdir(tmp_path)
    found, problems = expand_paths(["more/c.png", "photos", "**/*.png", str(a)])
    assert found == [c.relative_to(tmp_path), a.relative_to(tmp_path), b.relative_to(tmp_path)]
    assert problems == []
    # A pattern matching a folder lists the images below it; an explicit file is taken whatever its suffix.
    found, _ = expand_paths(["phot*", "photos/notes.txt"])
    assert [p.name for p in found] == ["a.png", "b.PNG", "notes.txt"]


def test_missing_paths_empty_folders_and_patterns_matching_nothing_are_problems(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no images here")
    found, problems = expand_paths([tmp_path / "gone.jpg", tmp_path / "empty", f"{tmp_path}/*.jpg"])
    assert found == []
    assert problems[0] == (str(tmp_path / "gone.jpg"), "no such file")
    assert problems[1][0] == str(tmp_path / "empty") and problems[1][1].startswith("no image files in this folder")
    assert problems[2] == (f"{tmp_path}/*.jpg", "no image file matches this pattern")


def test_inputs_become_encoded_images_or_a_reason(tmp_path):
    path = _png(tmp_path / "x.png")
    assert encode_input(path) == (path.read_bytes(), None)
    assert encode_input(str(path))[0] == path.read_bytes()
    data, problem = encode_input(np.zeros((3, 5, 3), np.uint8))
    assert problem is None and Image.open(io.BytesIO(data)).size == (5, 3)
    assert encode_input(np.zeros((3, 5, 3), np.float32))[1].endswith("got float32 [3, 5, 3]")
    assert encode_input(np.zeros((4000, 4000, 3), np.uint8), max_pixels=1000)[1].startswith("4000x4000 = ")
    assert encode_input(b"")[1] == "cannot decode image (empty: 0 bytes)"
    assert encode_input(tmp_path / "missing.png") == (None, "no such file")
    assert encode_input(tmp_path)[1].startswith("is a folder")
    truncated = bad_files.truncated(tmp_path / "cut.png", "png")
    assert encode_input(truncated)[1].startswith("cannot decode image (truncated or corrupt image data")
    big = io.BytesIO()
    Image.new("L", (200, 200)).save(big, format="PNG")
    assert "over the limit of 1,000" in encode_input(big.getvalue(), max_pixels=1000)[1]
