"""`switchboard check-deploy`: the real config passes; the historical misnaming is reported."""

from pathlib import Path

from libs.common.deploy_check import check
from libs.common.settings import ROOT

COMPOSE = """
services:
  api:
    image: switchboard
    expose: ["5000"]
  frontend:
    image: spa
    expose: ["3000"]
  calls:
    image: switchboard
    expose: ["5050"]
"""

HISTORICAL_NGINX = """
events {}
http {
    upstream backend { server prosaas-backend:5000; }
    upstream frontend { server prosaas-frontend:3000; }
    server {
        listen 80;
        location /api/ { proxy_pass http://backend; }
        location /webhook/ { proxy_pass http://calls:5050; }
        location /ws/ { proxy_pass http://calls:5051; }
        location / { proxy_pass http://frontend; }
    }
}
"""


def test_the_repository_config_passes() -> None:
    nginx = ROOT / "deploy" / "nginx" / "nginx.conf"
    assert check(nginx, ROOT / "docker-compose.prod.yml", root=ROOT) == []


def test_the_historical_misnaming_is_reported_precisely(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(HISTORICAL_NGINX)
    (tmp_path / "docker-compose.prod.yml").write_text(COMPOSE)
    problems = check(tmp_path / "nginx.conf", tmp_path / "docker-compose.prod.yml", root=tmp_path)
    assert problems == [
        "nginx.conf:4: upstream 'backend' server 'prosaas-backend:5000': no service "
        "'prosaas-backend' in docker-compose.prod.yml (services: api, calls, frontend)",
        "nginx.conf:5: upstream 'frontend' server 'prosaas-frontend:3000': no service "
        "'prosaas-frontend' in docker-compose.prod.yml (services: api, calls, frontend)",
        "nginx.conf:10: proxy_pass 'http://calls:5051': service 'calls' does not listen on 5051 "
        "(exposes: 5050)",
        f"{tmp_path / 'nginx.conf'}: public route /api/ reaches ['prosaas-backend'], "
        "not the 'api' service",
    ]


def test_a_missing_route_is_reported(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(
        "events {}\nhttp { server { location /api/ { proxy_pass http://api:5000; } } }\n"
    )
    (tmp_path / "docker-compose.prod.yml").write_text(COMPOSE)
    problems = check(tmp_path / "nginx.conf", tmp_path / "docker-compose.prod.yml", root=tmp_path)
    assert any("public route /webhook/ is missing" in p for p in problems)
    assert any("public route /ws/ is missing" in p for p in problems)
