# The API image: web (gunicorn), worker and beat all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ACADEMY_VAR_DIR=/app/var \
    STATIC_ROOT=/app/static

WORKDIR /app

RUN useradd --system --create-home --uid 10001 --user-group academy

COPY pyproject.toml ./
COPY academy ./academy
COPY video ./video
COPY scaling ./scaling
COPY manage.py ./
RUN pip install .

# Static files are collected at build time on the embedded defaults (DEBUG on
# for this one command, so no production secret is baked into the image). The
# compose web service collects them again at start into the volume nginx
# serves, as the academy user: it owns /app/static too.
RUN python manage.py collectstatic --no-input -v 0 \
    && mkdir -p /app/var \
    && chown -R academy:academy /app/var /app/static

USER academy

EXPOSE 8000

CMD ["gunicorn", "academy.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--timeout", "30", "--access-logfile", "-"]
