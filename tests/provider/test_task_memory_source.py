"""Where the provider's per-class memory needs come from: the calibration file, else the
setting, else none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from balancer import TaskClass
from provider.app import task_memory_needs
from provider.config import ProviderSettings


def calibration_file(tmp_path: Path, needs: dict[str, float] | None) -> Path:
    data: dict[str, object] = {"version": 1, "dis_avemin": 0.1, "dis_avemax": 1.0}
    if needs is not None:
        data["task_memory_mb"] = needs
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    return path


def test_the_files_figures_win_over_the_setting(tmp_path: Path) -> None:
    """Measured figures in the calibration file are used, the setting's ignored."""
    settings = ProviderSettings(
        calibration_file=calibration_file(tmp_path, {"RT": 0.4, "DT": 1.5}),
        task_memory_mb={TaskClass.RT: 9.0},
    )
    assert task_memory_needs(settings) == {TaskClass.RT: 0.4, TaskClass.DT: 1.5}


def test_without_figures_in_the_file_the_setting_is_used(tmp_path: Path) -> None:
    """A file of bounds only leaves the needs to ETHGW_PROVIDER_TASK_MEMORY_MB."""
    settings = ProviderSettings(
        calibration_file=calibration_file(tmp_path, None), task_memory_mb={TaskClass.MCT: 2.0}
    )
    assert task_memory_needs(settings) == {TaskClass.MCT: 2.0}


def test_the_setting_is_read_from_its_variable_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """ETHGW_PROVIDER_TASK_MEMORY_MB='{"RT": 1}' is the table {RT: 1.0}."""
    monkeypatch.setenv("ETHGW_PROVIDER_TASK_MEMORY_MB", '{"RT": 1, "MAT": 0.5}')
    assert ProviderSettings().task_memory_mb == {TaskClass.RT: 1.0, TaskClass.MAT: 0.5}


def test_nothing_configured_means_no_class_needs_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No file and no setting: an empty table, and the log says so."""
    with caplog.at_level("INFO", logger="ethgw.provider"):
        assert task_memory_needs(ProviderSettings(calibration_file=None)) == {}
    assert "task memory in use mb=RT:0,DT:0,MAT:0,MCT:0 source=none" in caplog.text


def test_a_file_with_a_hostile_figure_stops_the_start(tmp_path: Path) -> None:
    """A negative need in the file is refused, naming the class, before anything runs."""
    settings = ProviderSettings(calibration_file=calibration_file(tmp_path, {"DT": -1.0}))
    with pytest.raises(ValueError, match=r"task_memory_mb\[DT\]"):
        task_memory_needs(settings)
