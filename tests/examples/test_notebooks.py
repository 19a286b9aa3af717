"""The example notebooks run top to bottom, as a user would run them in Jupyter or Colab.

Each notebook is executed with nbclient in its own temporary working folder, with tiny values injected after
its `parameters` cell (the way papermill does it), and must end with its "NOTEBOOK OK" line and the files it
says it wrote. The committed notebooks must also stay clean: valid nbformat 4, no outputs, no execution counts.
"""

from __future__ import annotations

import os
from pathlib import Path

# The test extra brings these. Imported outright, not skipped when missing: a skip would let
# scripts/check_python_versions.sh report the notebooks "ok" on a Python where they never ran.
import nbclient
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = ("classification.ipynb", "detection.ipynb", "segmentation.ipynb")
CELL_TIMEOUT_S = 300  # one cell; a hung kernel fails the test instead of stalling the run
WEIGHTS_FILE = Path("weights", "mobilenet_v2_imagenet", "mobilenet_v2_torchvision_ported_keras_notop.weights.h5")


def read_notebook(name: str):
    return nbformat.read(EXAMPLES / name, as_version=4)


def inject_parameters(notebook, values: dict) -> None:
    """Adds a cell assigning `values` right after the cell tagged `parameters` (papermill's convention)."""
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, cell)


def this_python_kernel(folder: Path) -> KernelManager:
    """A kernel run by the interpreter running the tests, so that every Python that runs this file executes the
    notebooks with its own installed kerascv_tl: an installed "python3" kernelspec (say one in ~/.local/share/jupyter,
    which Jupyter looks at before the venv's) could start another Python."""
    spec = Path(write_kernel_spec(folder / "kernels" / "this-python"))
    return KernelManager(kernel_name=spec.name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]))


def execute(name: str, tmp_path: Path, values: dict) -> tuple:
    """Runs the notebook with `values` in a fresh tmp_path/work; returns the executed notebook and that folder."""
    notebook = read_notebook(name)
    inject_parameters(notebook, values)
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        km=this_python_kernel(tmp_path),
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,  # a busy machine starts the kernel slowly
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook, workdir


def stream_text(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def weights_for_test() -> str | None:
    """The shared MobileNetV2 weights file when the assets are here, else random init (the notebooks' code
    path is the same; only the numbers differ)."""
    # tests/support.py's assets_root, repeated so that this file needs nothing but the installed package.
    default = Path(__file__).resolve().parents[3] / "shared" / "assets"
    path = Path(os.environ.get("KERASCV_TL_ASSETS", default)) / WEIGHTS_FILE
    return str(path) if path.is_file() else None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name):
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), "clear the outputs"
    assert code[0].source.lstrip().startswith("# On Colab") and "# %pip install kerascv-tl" in code[0].source
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    for parameter in ("DATA_DIR = None", "IMAGE_SIZE =", "EPOCHS =", "BACKBONE =", 'WEIGHTS = "imagenet"'):
        assert parameter in tagged[0].source


@pytest.mark.slow(seconds=45)
def test_classification_notebook(tmp_path):
    # Each test takes another data path through its notebook: here a user's class-per-folder tree without train/
    # and val/, which the notebook splits 80/20; detection a user's COCO folder with its val split; segmentation
    # the synthetic dataset the notebook writes itself (DATA_DIR = None, what a first run does).
    from kerascv_tl.data.synthetic import write_classification_dataset

    photos = write_classification_dataset(tmp_path / "photos", train_per_class=10, val_per_class=1, image_size=32)
    values = {
        "DATA_DIR": str(photos / "train"),
        "IMAGE_SIZE": 32,
        "EPOCHS": 1,
        "BATCH_SIZE": 8,
        "WEIGHTS": weights_for_test(),
    }
    notebook, workdir = execute("classification.ipynb", tmp_path, values)
    text = stream_text(notebook)
    assert "24 training and 6 validation images; classes: ['circle', 'square', 'triangle']" in text
    assert "NOTEBOOK OK: task=classification" in text
    assert "keys=['labels', 'path', 'scores']" in text
    output = workdir / "classification_output"
    assert (output / "saved_model" / "1" / "saved_model.pb").is_file()
    assert (output / "evaluation" / "metrics.json").is_file()
    assert (output / "evaluation" / "confusion_matrix.png").is_file()
    # The pictures were shown inline, not only written.
    assert any(o.get("output_type") == "display_data" for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.slow(seconds=60)
def test_detection_notebook(tmp_path):
    from kerascv_tl.data.synthetic import write_detection_dataset

    # A smaller dataset than the notebook's own default (48 + 16 images): the steps are what is tested here.
    data = write_detection_dataset(tmp_path / "shapes_detection", num_train=12, num_val=4, image_size=64)
    values = {"DATA_DIR": str(data), "IMAGE_SIZE": 64, "EPOCHS": 1, "BATCH_SIZE": 8, "WEIGHTS": weights_for_test()}
    notebook, workdir = execute("detection.ipynb", tmp_path, values)
    text = stream_text(notebook)
    assert "12 training images" in text and "4 validation images" in text
    assert "NOTEBOOK OK: task=detection" in text
    assert "keys=['boxes', 'num_boxes', 'path']" in text
    output = workdir / "detection_output"
    assert (output / "saved_model" / "1" / "saved_model.pb").is_file()
    assert (output / "evaluation" / "metrics.json").is_file()


@pytest.mark.slow(seconds=50)
def test_segmentation_notebook(tmp_path):
    # DATA_DIR stays None: the notebook writes its default synthetic dataset (tracing, not the 48 + 16 small
    # images, is what takes the time on a CPU).
    values = {"IMAGE_SIZE": 32, "EPOCHS": 1, "BATCH_SIZE": 8, "WEIGHTS": weights_for_test()}
    notebook, workdir = execute("segmentation.ipynb", tmp_path, values)
    text = stream_text(notebook)
    assert "48 training and 16 validation pairs; classes: ['background', 'circle', 'square', 'triangle']" in text
    assert "NOTEBOOK OK: task=segmentation" in text
    assert "keys=['class_fractions', 'height', 'mask', 'path', 'width']" in text
    output = workdir / "segmentation_output"
    assert (output / "saved_model" / "1" / "saved_model.pb").is_file()
    assert (output / "evaluation" / "metrics.json").is_file()
