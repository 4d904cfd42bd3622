"""`switchboard check-deploy`: the real config passes; the historical misnaming is reported."""

from pathlib import Path

from devtools.deploy_check import check, check_broker, read_env_file
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


# --- the broker: BROKER_URL and the rabbitmq profile against the compose file ---------------

REAL_COMPOSE = ROOT / "docker-compose.prod.yml"
RABBITMQ_ENV = {
    "COMPOSE_PROFILES": "rabbitmq",
    "RABBITMQ_PASSWORD": "s3cret",
    "BROKER_URL": "amqp://switchboard:s3cret@rabbitmq:5672/%2F",
}


def test_redis_as_the_broker_and_the_rabbitmq_profile_both_pass() -> None:
    assert check_broker(REAL_COMPOSE, {}) == []
    assert check_broker(REAL_COMPOSE, RABBITMQ_ENV) == []


def test_broker_mistakes_are_reported() -> None:
    without_profile = {**RABBITMQ_ENV, "COMPOSE_PROFILES": ""}
    assert check_broker(REAL_COMPOSE, without_profile) == [
        "BROKER_URL names 'rabbitmq', which only runs with the profile rabbitmq: add it to "
        "COMPOSE_PROFILES"
    ]
    wrong_host = {**RABBITMQ_ENV, "BROKER_URL": "amqp://u:p@rabbit:5672/%2F"}
    assert check_broker(REAL_COMPOSE, wrong_host)[0].startswith("BROKER_URL: no service 'rabbit'")
    wrong_port = {**RABBITMQ_ENV, "BROKER_URL": "amqp://u:p@rabbitmq:5673/%2F"}
    assert check_broker(REAL_COMPOSE, wrong_port) == [
        "BROKER_URL: service 'rabbitmq' does not listen on 5673"
    ]
    assert check_broker(REAL_COMPOSE, {**RABBITMQ_ENV, "RABBITMQ_PASSWORD": ""}) == [
        "RABBITMQ_PASSWORD is empty: the rabbitmq service needs one"
    ]
    unused = {"COMPOSE_PROFILES": "rabbitmq"}
    assert "nothing would use it" in check_broker(REAL_COMPOSE, unused)[0]


def test_an_env_file_is_read_like_compose_reads_it(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n\nCOMPOSE_PROFILES=rabbitmq\nBROKER_URL='amqp://a:b@h/%2F'\n")
    assert read_env_file(env_file) == {
        "COMPOSE_PROFILES": "rabbitmq",
        "BROKER_URL": "amqp://a:b@h/%2F",
    }
