"""Settings of the pgfeed example site: the smallest Django project that serves a feed.

The database comes from PGFEED_EXAMPLE_DSN (or DATABASE_URL), any libpq DSN or URL of
a PostgreSQL 15+ with pgvector where `pgfeed migrate` has run. The tests use a
database of their own (see conftest.py).
"""

import os
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "social",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "feedsite.urls"
TEMPLATES = []


def _database(dsn: str) -> dict:
    params = conninfo_to_dict(dsn.replace("postgresql+psycopg://", "postgresql://"))
    return {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3
        "NAME": params.get("dbname", "feedsite"),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": params.get("port", ""),
    }


DATABASES = {
    "default": _database(os.environ.get("PGFEED_EXAMPLE_DSN") or os.environ.get("DATABASE_URL")
                         or "dbname=feedsite")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
