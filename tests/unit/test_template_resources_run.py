"""`poller run --template` before the service starts (DESIGN §1.10; issue 16 §2): a mapping whose
source is missing does not start, the others do; settings or a template that leave nothing to run
end the command with exit code 2 and the problems logged, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.api.template_read import read_template
from poller.config import Settings, SqsMapping, StreamMapping
from poller.runtime.template_run import reads_any, run_template

ROOT = Path(__file__).resolve().parents[2]
SAM_APP = ROOT / "examples" / "sam-app" / "template.yaml"


def test_only_the_mappings_of_missing_sources_are_left_out() -> None:
    read = read_template(
        SAM_APP, parameter_overrides={}, region="us-east-1", account_id="123456789012", lint=False
    )
    loaded = read.to_config(Settings(), settings_file=None, base_dir=ROOT)
    by_id = {s.logical_id: s for s in read.sources}
    orders = next(m for m in loaded.mappings if isinstance(m, SqsMapping))
    stock = next(m for m in loaded.mappings if isinstance(m, StreamMapping))
    assert reads_any(orders, [by_id["OrdersQueue"]])
    assert not reads_any(orders, [by_id["OrdersDeadLetterQueue"], by_id["StockTable"]])
    assert reads_any(stock, [by_id["StockTable"]])
    assert not reads_any(stock, [by_id["OrdersQueue"], by_id["StockFailuresQueue"]])


def test_broken_settings_end_the_command_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "poller.yaml"
    settings.write_text("aws: {region: [not, a, region]}\n")
    code = run_template(SAM_APP, parameter_overrides={}, config=settings, environ={}, cwd=tmp_path)
    assert code == 2
    out = capsys.readouterr().out
    assert "config_problem" in out
    assert f"{settings}:1: aws.region" in out


def test_a_template_that_cannot_be_read_ends_the_command_with_its_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    code = run_template(missing, parameter_overrides={}, config=None, environ={}, cwd=tmp_path)
    assert code == 2
    out = capsys.readouterr().out
    assert f"{missing}: Cannot read template" in out
    assert "template_not_run" in out
    assert "Traceback" not in out
