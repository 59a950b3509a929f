"""The course notebooks (notebooks/*.ipynb) executed as a user runs them, on tiny data in the real
formats: a notebook that raises fails the suite. Committed notebooks hold no outputs, and README
links each; a mistake in a notebook is one message and the kernel lives on."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import write_cifar10, write_mnist
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WITHOUT_PLOTS = {"autodiff"}  # every other notebook draws its figures inline


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """MNIST (IDX files) and CIFAR-10 (pickled batches) in the layout a data root holds."""
    root = tmp_path_factory.mktemp("data")
    write_mnist(root)
    write_cifar10(root)
    return root


def execute(nb, cwd: Path, allow_errors: bool = False):
    client = NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=allow_errors,
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def outputs_of(cell, kind: str) -> list:
    return [o for o in cell.get("outputs", []) if o["output_type"] == kind]


def test_there_is_a_notebook_per_assignment() -> None:
    assert {p.stem for p in NOTEBOOKS} == {"lenet_cifar10", "scratch_layers", "rnn_rows_mnist",
                                           "temporal_order", "echo", "autodiff"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_tiny_data(path: Path, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLHW_DATA", str(tiny_data))
    monkeypatch.setenv("DLHW_NOTEBOOK_SIZE", "tiny")
    monkeypatch.setenv("DLHW_OUTPUT", str(tmp_path / "outputs"))
    nb = execute(nbformat.read(path, as_version=4), tmp_path)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)  # every cell ran (a raising cell stops the test)
    images = [o for c in code for o in outputs_of(c, "display_data") if "image/png" in o["data"]]
    if path.stem in WITHOUT_PLOTS:
        assert any(outputs_of(c, "stream") for c in code)
    else:
        assert images, "no figure was drawn inline"
        assert any((tmp_path / "outputs").rglob("results.json"))  # trained through dlhw's API


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_hold_no_outputs_and_start_with_parameters(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])  # papermill-style parameters first
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_readme_links_every_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((notebooks/[\w.]+\.ipynb)\)", readme))
    assert linked == {f"notebooks/{p.name}" for p in NOTEBOOKS}
    assert "%load_ext tensorboard" in readme


def test_a_mistake_in_a_notebook_is_one_message_and_the_kernel_lives_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLHW_OUTPUT", str(tmp_path / "outputs"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        "import dlhw",
        "dlhw.train('optimizer.lrr=0.1')",  # a mistake Hydra finds while composing
        "dlhw.train('trainer.max_epochs=1', 'optimizer.lr=-1')",  # one the run finds
        "dlhw.runs('nowhere')",
        "print('alive')",
    )])
    cells = execute(nb, tmp_path, allow_errors=True).cells
    expected = ["dlhw: error: optimizer.lrr is not a key of this config; did you mean optimizer.lr?",
                "dlhw: error: ", "dlhw: error: nowhere does not exist"]
    for cell, message in zip(cells[1:4], expected, strict=True):
        assert not outputs_of(cell, "error")  # no traceback
        lines = [line for o in outputs_of(cell, "stream") for line in o["text"].splitlines()
                 if "dlhw: error" in line or "Traceback" in line]
        assert len(lines) == 1 and lines[0].startswith(message), lines
    assert "optimizer.lr=-1" in outputs_of(cells[2], "stream")[-1]["text"]
    assert outputs_of(cells[4], "stream")[0]["text"] == "alive\n"
