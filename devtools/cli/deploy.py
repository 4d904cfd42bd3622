"""`switchboard check-deploy`: nginx upstreams and routes, and the broker settings of ``.env``,
against the compose services."""

from __future__ import annotations

from pathlib import Path

import click

from devtools import deploy_check
from libs.common.settings import ROOT


@click.command("check-deploy")
@click.option("--nginx", "nginx_conf", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=ROOT / "deploy" / "nginx" / "nginx.conf", show_default=True)  # fmt: skip
@click.option("--compose", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=ROOT / "docker-compose.prod.yml", show_default=True)  # fmt: skip
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path),
              default=ROOT / ".env", show_default=True,
              help="The compose .env file (broker settings checked if it exists).")  # fmt: skip
def check_deploy(nginx_conf: Path, compose: Path, env_file: Path) -> None:
    """Report every nginx upstream, proxy_pass or route that no compose service answers, and a
    BROKER_URL (or rabbitmq profile) that does not match the compose services."""
    try:
        problems = deploy_check.check(nginx_conf, compose, root=ROOT)
        env = deploy_check.read_env_file(env_file) if env_file.exists() else {}
        problems += deploy_check.check_broker(compose, env)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"ok: {nginx_conf.name} and {compose.name} agree")
