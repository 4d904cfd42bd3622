"""The production image's dependency list, built from what production code imports.

Production code is libs/ and services/ (the Dockerfile copies nothing else). Every third-party
top-level module it imports maps to a distribution (importlib.metadata.packages_distributions);
those distributions, plus the few that production loads by name rather than by import, are the
direct production dependencies that pyproject.toml must declare. requirements.prod.lock, which
the Dockerfile installs, is their closure pinned at the versions of requirements.lock.

Run ``python -m devtools.image_deps --write`` to regenerate requirements.prod.lock;
tests/deploy/test_image_dependencies.py fails when any of the three disagree.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
#: The folders the Dockerfile copies into the image.
PRODUCTION_PACKAGES = ("libs", "services")
PROD_LOCK = ROOT / "requirements.prod.lock"
FULL_LOCK = ROOT / "requirements.lock"

#: Distributions production needs without importing them: name → why.
LOADED_BY_NAME = {
    "psycopg": "SQLAlchemy's postgresql+psycopg dialect, chosen in libs/common/db.py",
}


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(roots: Iterable[Path]) -> set[str]:
    """Dotted names of the absolute imports in every .py file under roots."""
    names: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return names


def _provider(module: str, candidates: list[str]) -> str:
    """The one distribution that ships ``module``. Several share a namespace package's top
    level (``google`` is google-auth, protobuf, google-api-core…): the files decide."""
    if len(candidates) == 1:
        return candidates[0]
    parts = module.split(".")
    for length in range(len(parts), 1, -1):
        prefix = "/".join(parts[:length])
        owners = {
            name
            for name in candidates
            if any(
                str(file).startswith((prefix + "/", prefix + ".py"))
                for file in distribution(name).files or []
            )
        }
        if len(owners) == 1:
            return owners.pop()
    raise LookupError(f"{module!r} is in several distributions: {sorted(candidates)}")


def imported_distributions(roots: Iterable[Path] | None = None) -> set[str]:
    """The distributions providing the third-party modules that production code imports."""
    roots = roots or [ROOT / name for name in PRODUCTION_PACKAGES]
    providers = packages_distributions()
    found: set[str] = set()
    for module in imported_modules(roots):
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in PRODUCTION_PACKAGES:
            continue
        if top not in providers:
            raise LookupError(f"no installed distribution provides {module!r}")
        found.add(canonical(_provider(module, providers[top])))
    return found


def production_requirements() -> set[str]:
    """What the image must install directly: imported, or loaded by name."""
    return imported_distributions() | {canonical(name) for name in LOADED_BY_NAME}


def declared_dependencies() -> set[str]:
    """pyproject.toml's [project] dependencies (the production ones), by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonical(Requirement(spec).name) for spec in project["dependencies"]}


def closure(names: Iterable[str]) -> set[str]:
    """names and everything they require (extras requested along the way included), as the
    installed metadata states for this interpreter."""
    pending = [Requirement(name) for name in names]
    extras_seen: dict[str, set[str]] = {}
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        extras = set(requirement.extras)
        if name in extras_seen and extras <= extras_seen[name]:
            continue
        extras_seen[name] = extras_seen.get(name, set()) | extras
        for spec in distribution(name).requires or []:
            child = Requirement(spec)
            wanted = [{"extra": extra} for extra in extras_seen[name]] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in wanted):
                pending.append(child)
    return set(extras_seen)


def pinned(lock: Path) -> dict[str, str]:
    """name → the line pinning it in a requirements file."""
    lines = [line.strip() for line in lock.read_text().splitlines()]
    return {canonical(line.split("==")[0]): line for line in lines if "==" in line}


def production_lock() -> str:
    """requirements.prod.lock as it should read: the closure of pyproject's production
    dependencies, each pinned as in requirements.lock (with the extras pyproject asks for)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    full = pinned(FULL_LOCK)
    needed = closure(project["dependencies"])
    unpinned = sorted(needed - set(full))
    if unpinned:
        raise LookupError(f"requirements.lock pins none of {unpinned}")
    lines = [full[name] for name in sorted(needed)]
    header = (
        "# Generated by `python -m devtools.image_deps --write` from requirements.lock: the\n"
        "# image's dependencies (production imports and what they require). Not edited by hand.\n"
    )
    return header + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite requirements.prod.lock")
    args = parser.parse_args()
    missing = production_requirements() - declared_dependencies()
    unused = declared_dependencies() - production_requirements()
    for name in sorted(missing):
        print(f"pyproject.toml: production imports {name} but does not declare it", file=sys.stderr)
    for name in sorted(unused):
        print(f"pyproject.toml: declares {name}, which production never imports", file=sys.stderr)
    if args.write:
        PROD_LOCK.write_text(production_lock())
    else:
        sys.stdout.write(production_lock())
    raise SystemExit(1 if missing or unused else 0)


if __name__ == "__main__":
    main()
