"""Alert rules pass promtool's unit tests; dashboards and rules are well formed."""

import shutil
import subprocess

import pytest

from libs.common.settings import ROOT
from tests.support.promql import expressions, metric_names
from tests.support.services import IN_CI

PROMETHEUS = ROOT / "deploy" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if IN_CI:
            pytest.fail("promtool is required in CI (.ci/run installs Debian's prometheus)")
        pytest.skip("promtool is not installed")
    return path


def test_alert_rules_pass_their_unit_tests() -> None:
    promtool = _promtool()
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS,
                          capture_output=True, text=True)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


def test_prometheus_config_is_valid() -> None:
    result = subprocess.run([_promtool(), "check", "config", "prometheus.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_and_rules_name_metrics() -> None:
    assert len(expressions()) >= 20
    names = metric_names()
    for expected in ("switchboard_queue_messages", "switchboard_dispatch_gap_seconds_bucket",
                     "dramatiq_messages_total", "switchboard_active_calls"):  # fmt: skip
        assert expected in names
