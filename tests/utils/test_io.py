import json

import pytest

from kerascv_tl.utils.io import atomic_directory, atomic_path, atomic_write_json


def test_atomic_write_json_replaces_whole_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"accuracy": 0.5})
    atomic_write_json(target, {"accuracy": 0.75})
    assert json.loads(target.read_text()) == {"accuracy": 0.75}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_write_leaves_old_file_and_no_temporaries(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_atomic_directory_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "export" / "1"
    with pytest.raises(ValueError):
        with atomic_directory(target) as tmp:
            (tmp / "saved_model.pb").write_text("x")
            raise ValueError("boom")
    assert not target.exists()
    with atomic_directory(target) as tmp:
        (tmp / "saved_model.pb").write_text("x")
    assert (target / "saved_model.pb").read_text() == "x"
    with pytest.raises(FileExistsError):
        with atomic_directory(target):
            pass


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    target = atomic_write_json(tmp_path / "card.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
