"""A small Django project for the tests: manage.py, settings that read their secret and host
names from the environment (with a default only good for a build), a page, a static file
collected by `collectstatic` and served by WhiteNoise (Django itself serves none when DEBUG is
off)."""

from __future__ import annotations

DJANGO_APP: dict[str, str] = {
    "requirements.txt": "Django==5.1.4\nwhitenoise==6.8.2\n",
    "Procfile": "web: python3 manage.py runserver --noreload 127.0.0.1:$PORT\n",
    "manage.py": """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
""",
    "mysite/__init__.py": "",
    "mysite/settings.py": """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "only-for-collectstatic")
DEBUG = False
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h]
INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = ["whitenoise.middleware.WhiteNoiseMiddleware"]
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "assets"]
USE_TZ = True
""",
    "mysite/urls.py": """\
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda request: HttpResponse("bakery is open"))]
""",
    "assets/site.css": "body { color: saddlebrown; }\n",
}
