"""Every committed results/<matrix>/REPORT.md is what `lerobot-world report` makes from the committed files
alone: regenerated from a copy of results/ elsewhere, its REPORT.md and REPORT.json are byte-identical
and its plots are written.
So a result edited by hand, a run folder missing from git, or a report change not re-run on the study fails
here, and a user's clean clone reproduces every table the README quotes."""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results"
REPORTS = sorted(p.parent.name for p in RESULTS.glob("*/REPORT.md"))


def test_the_study_report_is_among_the_committed_ones():
    assert "cpu_study" in REPORTS, REPORTS


@pytest.mark.parametrize("matrix", REPORTS)
def test_committed_report_regenerates_byte_identical_from_results_alone(matrix, tmp_path):
    from lerobot_world.study.report import main as report

    committed = RESULTS / matrix
    recorded = json.loads((committed / "REPORT.json").read_text())
    # The report records which separate calibration matrix it drew on ("<folder>/runs/<run>").
    calibrations = sorted({path.split("/")[0] for path in recorded["calibration_runs"]})
    assert len(calibrations) <= 1, calibrations
    copy = tmp_path / "results"
    for name in [matrix, *calibrations]:
        shutil.copytree(RESULTS / name, copy / name)
    out = copy / matrix / "REPORT.md"
    for name in ["REPORT.md", "REPORT.json", *recorded["plots"]]:
        (out.parent / name).unlink()  # what is compared below must be written by this run
    argv = [str(copy / matrix), f"--output={out}"] + [f"--calibration={copy / c}" for c in calibrations]
    with contextlib.redirect_stdout(io.StringIO()):
        report(argv)
    for name in ["REPORT.md", "REPORT.json"]:
        assert (out.parent / name).read_bytes() == (committed / name).read_bytes(), f"results/{matrix}/{name}"
    # Plots are compared by presence only: PNG bytes may change with the matplotlib release.
    assert all((out.parent / name).stat().st_size > 0 for name in recorded["plots"])
