# One image for every process type: api, calls, worker, scheduler, migrate.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    SWITCHBOARD_VAR_DIR=/var/lib/switchboard

WORKDIR /app
# requirements.prod.lock: what production code imports and its dependencies, no more
# (tests/deploy/test_image_dependencies.py; regenerate with `python -m devtools.image_deps --write`).
COPY requirements.prod.lock pyproject.toml ./
RUN pip install --requirement requirements.prod.lock

# Production code only: devtools/ (switchboard run, the dev console, check-deploy), simulators/,
# bench/ and tests/ stay out of the image.
COPY libs ./libs
COPY services ./services
COPY alembic.ini ./
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app switchboard \
    && mkdir -p /var/lib/switchboard/recordings \
    && chown -R switchboard /var/lib/switchboard

USER switchboard
EXPOSE 5000 5050 9191 9192
CMD ["switchboard", "status"]
