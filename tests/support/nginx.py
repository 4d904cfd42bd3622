"""The real deploy/nginx config, rendered to run on loopback: compose service names mapped to
local ports, container paths mapped to a temporary directory, a self-signed certificate."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.deploy_check import CONTAINER_CONFIG_DIR
from libs.common.settings import ROOT
from tests.support.services import IN_CI

SOURCE = ROOT / "deploy" / "nginx"


def nginx_binary() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        if IN_CI:
            pytest.fail("nginx is required in CI (.ci/run installs Debian's nginx)")
        pytest.skip("nginx is not installed")
    return path


def render(tmp: Path, upstreams: dict[str, int], http_port: int, https_port: int) -> Path:
    conf_dir = tmp / "nginx"
    shutil.copytree(SOURCE, conf_dir)
    certs = tmp / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(certs / "privkey.pem"),
         "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    for path in [conf_dir / "nginx.conf", *sorted((conf_dir / "snippets").glob("*.conf"))]:
        text = path.read_text()
        text = text.replace(CONTAINER_CONFIG_DIR, f"{conf_dir}/")
        text = text.replace("/etc/nginx/certs/", f"{certs}/")
        text = text.replace("/usr/share/nginx/html", str(conf_dir / "html"))
        text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp}/nginx.pid;")
        text = text.replace("/tmp/nginx-", f"{tmp}/nginx-")
        text = text.replace("listen 8080;", f"listen 127.0.0.1:{http_port};")
        text = text.replace("listen 8443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
        # "server api:5000;" becomes "server 127.0.0.1:PORT;"; a key with a port ("calls:5060")
        # names one server of a service that has several.
        for service, port in sorted(upstreams.items(), key=lambda item: ":" not in item[0]):
            pattern = re.escape(service) if ":" in service else rf"{service}:\d+"
            text = re.sub(rf"server {pattern};", f"server 127.0.0.1:{port};", text)
        if path.name == "nginx.conf" and os.geteuid() == 0:
            # As root, nginx's workers would run as "nobody", who cannot read pytest's
            # root-only temporary directories. Production runs nginx's image defaults.
            text = "user root;\n" + text
        path.write_text(text)
    return conf_dir / "nginx.conf"
