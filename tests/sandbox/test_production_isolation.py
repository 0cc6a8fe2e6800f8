"""Production settings never import the sandbox (issue: "production settings never import it")."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("telephony_app", "portals", "calls", "b24client")


def test_loading_the_django_project_does_not_import_b24sandbox():
    code = (
        "import sys, django; django.setup();"
        "import django.urls; django.urls.get_resolver().url_patterns;"
        "import telephony_app.wsgi, telephony_app.celery;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'b24sandbox');"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "telephony_app.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_product_module_imports_b24sandbox():
    offenders = []
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] == "b24sandbox" for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
