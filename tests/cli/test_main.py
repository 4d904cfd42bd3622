"""`switchboard` gets its development commands from entry points, and runs without them."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import click
import pytest

from libs.cli import main


def _group_with(monkeypatch: pytest.MonkeyPatch, *entries: EntryPoint) -> click.Group:
    monkeypatch.setattr(main, "entry_points", lambda group: list(entries))
    group = click.Group("switchboard")
    main.add_plugin_commands(group)
    return group


def test_the_installed_development_commands_join_the_cli() -> None:
    group = click.Group("switchboard")
    main.add_plugin_commands(group)
    assert {"run", "check-deploy"} <= set(group.commands)


def test_a_command_whose_package_is_absent_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production image: the metadata names devtools, the package is not there.
    absent = EntryPoint("run", "devtools_not_in_this_image.cli.run:run", main.COMMANDS_GROUP)
    present = EntryPoint("status", "libs.cli.status:status", main.COMMANDS_GROUP)
    group = _group_with(monkeypatch, absent, present)
    assert set(group.commands) == {"status"}


def test_a_broken_import_inside_a_present_package_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libs.common exists; a module missing inside it is a bug, not an absent package.
    broken = EntryPoint("x", "libs.common.no_such_module:x", main.COMMANDS_GROUP)
    with pytest.raises(ModuleNotFoundError):
        _group_with(monkeypatch, broken)
