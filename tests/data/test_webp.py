""".webp images: listed by the readers, checked by the data check, decoded by the training pipeline and by the
exported serving graph to the same pixels as a PNG of the same picture; animated WebP refused by name."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascv_tl.config import load_config
from kerascv_tl.data.check import check_data
from kerascv_tl.data.decode import decode_image, read_image_file
from kerascv_tl.data.errors import ImageDecodeError
from kerascv_tl.data.files import image_files, image_size
from kerascv_tl.data.image_check import bomb_problem, image_problem
from kerascv_tl.data.readers import folder_source
from kerascv_tl.export.serving import SERVING_DEFAULT, load_serving, serving_archive, write_versioned

HEIGHT, WIDTH = 12, 20  # not square, so a transposed decode would show


def picture(seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, channels), dtype=np.uint8)


def save(array: np.ndarray, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def animated_webp(path: Path) -> Path:
    """Two RGB frames: no alpha flag in the VP8X header, the kind TensorFlow's decoder mis-reads."""
    frames = [Image.fromarray(picture(7)), Image.fromarray(picture(8))]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True)
    return path


@pytest.fixture(scope="module")
def webp_tree(tmp_path_factory) -> Path:
    """root/train/{a,b}/: PNGs and lossless WebPs (one RGBA, one with an upper-case suffix); root/png/ holds the
    PNG of every WebP's picture (RGBA too: decode_image drops alpha from both alike)."""
    root = tmp_path_factory.mktemp("webp")
    train = root / "train"
    save(picture(0), train / "a" / "one.png")
    save(picture(1), train / "a" / "two.webp", lossless=True)
    save(picture(2), train / "b" / "three.png")
    save(picture(3, channels=4), train / "b" / "four.webp", lossless=True, exact=True)
    save(picture(4), train / "b" / "FIVE.WEBP", lossless=True)
    for seed, name in ((1, "two"), (3, "four"), (4, "FIVE")):
        save(picture(seed, channels=4 if seed == 3 else 3), root / "png" / f"{name}.png")
    return root


def test_webp_files_are_listed_and_sized(webp_tree):
    assert [p.name for p in image_files(webp_tree / "train" / "b")] == ["FIVE.WEBP", "four.webp", "three.png"]
    source = folder_source(webp_tree / "train")
    assert sorted(Path(p).name for p in source.paths) == ["FIVE.WEBP", "four.webp", "one.png", "three.png", "two.webp"]
    assert image_size(webp_tree / "train" / "a" / "two.webp") == (WIDTH, HEIGHT)
    assert image_problem(webp_tree / "train" / "b" / "four.webp", 10_000) == (None, (WIDTH, HEIGHT))


def test_the_data_check_keeps_webp_files(webp_tree):
    check = check_data(load_config(None, [f"data.train={webp_tree}/train", "data.val_fraction=0.4"]))
    assert list(check.problems) == []
    kept = {Path(p).name for p in [*check.train.paths, *check.val.paths]}
    assert {"two.webp", "four.webp", "FIVE.WEBP"} <= kept


def test_training_decode_gives_the_png_pixels(webp_tree):
    source = folder_source(webp_tree / "train")
    decoded = {Path(p).stem: image.numpy() for p, (image, _) in zip(source.paths, source.decoded(shuffle=False))}
    for name in ("two", "four", "FIVE"):
        png = read_image_file(webp_tree / "png" / f"{name}.png")
        assert png.shape == (HEIGHT, WIDTH, 3)
        np.testing.assert_array_equal(decoded[name], png)  # lossless: exactly the same pixels
    np.testing.assert_array_equal(decoded["four"], picture(3, channels=4)[:, :, :3])  # alpha dropped


def test_serving_graph_decodes_webp_like_png(webp_tree, tmp_path):
    # An export that returns the decoded pixels: the serving graph's own decode, through a SavedModel round trip.
    model = keras.Sequential([keras.Input((HEIGHT, WIDTH, 3)), keras.layers.Identity()])
    spec = tf.TensorSpec([HEIGHT, WIDTH, 3], tf.float32)
    archive = serving_archive(model, lambda image: tf.cast(image, tf.float32), spec, lambda x: {"pixels": model(x)})
    folder = write_versioned(archive, tmp_path / "pixels", None, {"name": "pixels"}, ["x"], ["pixels"], {})
    loaded, _ = load_serving(folder)
    names = ["two", "four", "FIVE"]
    train = webp_tree / "train"
    webps = [train / "a" / "two.webp", train / "b" / "four.webp", train / "b" / "FIVE.WEBP"]
    serve = loaded.signatures[SERVING_DEFAULT]
    from_webp = serve(image_bytes=tf.constant([p.read_bytes() for p in webps]))["pixels"].numpy()
    from_png = serve(image_bytes=tf.constant([(webp_tree / "png" / f"{n}.png").read_bytes() for n in names]))
    np.testing.assert_array_equal(from_webp, from_png["pixels"].numpy())
    np.testing.assert_array_equal(from_webp[1], picture(3, channels=4)[:, :, :3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="animated WebP"):
        serve(image_bytes=tf.constant([animated_webp(tmp_path / "anim.webp").read_bytes()]))


def test_animated_webp_is_refused_by_name(tmp_path):
    path = animated_webp(tmp_path / "train" / "a" / "anim.webp")
    problem, size = image_problem(path, 10_000)
    assert size is None and problem.startswith("an animated WebP") and "still image" in problem
    with pytest.raises(ImageDecodeError, match="anim.webp: an animated WebP"):
        read_image_file(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="animated WebP"):
        decode_image(path.read_bytes())
    for i in range(2):
        save(picture(10 + i), tmp_path / "train" / "a" / f"still{i}.png")
        save(picture(20 + i), tmp_path / "train" / "b" / f"still{i}.webp", lossless=True)
    check = check_data(load_config(None, [f"data.train={tmp_path}/train", "data.val_fraction=0.5"]))
    [reported] = list(check.problems)
    assert reported["path"] == str(path) and "an animated WebP" in reported["message"]


def test_webp_header_size_feeds_the_bomb_guard(webp_tree):
    path = webp_tree / "train" / "a" / "two.webp"
    assert bomb_problem(path) is None
    assert f"{WIDTH}x{HEIGHT} = {WIDTH * HEIGHT:,} pixels" in bomb_problem(path, max_pixels=100)
    problem, _ = image_problem(path, 100)
    assert "decompression bomb" in problem


def test_lossy_and_short_webp_bytes(tmp_path):
    lossy = save(picture(5), tmp_path / "lossy.webp", quality=90)
    with Image.open(lossy) as image:
        expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(read_image_file(lossy), expected)  # libwebp decodes lossy data alike here
    for data in (b"RIFF", b"RIFF\x00\x00\x00\x00WEBPVP8X"):  # a signature and nothing behind it
        with pytest.raises(tf.errors.InvalidArgumentError):
            decode_image(data)
