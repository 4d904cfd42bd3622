"""Development tooling: `switchboard run`, the dev console, embedded Redis, `check-deploy`.

The production image leaves this package out (see Dockerfile); nothing in libs/ or services/
imports it. Its commands join the `switchboard` CLI through the `switchboard.commands` entry
points declared in pyproject.toml."""
