# The in-portal app's pages (frontend/: Vue + the Bitrix24 UI kit), built from the npm lockfile; the image
# serves the result as static files, nothing is fetched from a CDN at run time.
FROM node:20-slim AS frontend
WORKDIR /build
COPY frontend/package.json frontend/package-lock.json frontend/
RUN cd frontend && npm ci --no-audit --no-fund
COPY frontend/ frontend/
COPY locale/ locale/
RUN cd frontend && npm run build

# Production image: the Django app (gunicorn), the Celery worker and beat all run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    APP_VAR_DIR=/var/lib/telephony

# ffmpeg converts PBX recordings that are not wav/mp3 (RECORDINGS_FFMPEG); gettext compiles locale/.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg gettext \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
COPY --from=frontend /build/inportal/static/inportal/ inportal/static/inportal/
# collectstatic needs settings to load; production checks are satisfied by throw-away values
# for this one build step only (nothing is encrypted or signed during it).
RUN APP_ENV=development python manage.py collectstatic --no-input \
    && APP_ENV=development python manage.py compilemessages --ignore 'frontend/*' \
    && useradd --system --home /app telephony \
    && mkdir -p /var/lib/telephony \
    && chown telephony /var/lib/telephony

USER telephony
EXPOSE 8000
CMD ["gunicorn", "telephony_app.wsgi:application", "-c", "python:ops.gunicorn", "--bind", "0.0.0.0:8000", "--timeout", "60", "--access-logfile", "-"]
