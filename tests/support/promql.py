"""Metric names used by the alert rules and dashboards, for checking against real /metrics."""

from __future__ import annotations

import json
import re

import yaml

from libs.common.settings import ROOT

_NAME = re.compile(r"\b((?:switchboard|dramatiq)_[a-z0-9_]+)")


def expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for path in (ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [target["expr"] for target in panel["targets"]]
    return exprs


def metric_names() -> set[str]:
    return {name for expr in expressions() for name in _NAME.findall(expr)}
