"""The README's settings table tells the defaults the code has (calls' settings: one default, written once)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import ROOT

PREFIXES = ("CALLS_", "ORIGINATE_", "ROUTE_", "PBX_AUTH_", "RECORDING_")
ROW = re.compile(r"^\| (?P<names>`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \| (?P<defaults>[^|]+) \|", re.M)


def readme_defaults() -> dict[str, float]:
    found: dict[str, float] = {}
    for row in ROW.finditer((ROOT / "README.md").read_text()):
        names = re.findall(r"`([A-Z0-9_]+)`", row["names"])
        values = [v.strip().removesuffix(" s") for v in row["defaults"].split(",")]
        if not all(name.startswith(PREFIXES) for name in names) or len(values) != len(names):
            continue
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            continue  # "500 MiB" and the like: not a plain number
        found.update(zip(names, numbers, strict=True))
    return found


def code_defaults(names: list[str]) -> dict[str, float]:
    """The values settings.py gives when nothing is set in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    script = ("import json, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'telephony_app.settings'; django.setup();"
              "from django.conf import settings;"
              f"print(json.dumps({{n: float(getattr(settings, n)) for n in {names!r}}}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_numeric_default_the_readme_gives_for_calls_is_the_codes():
    documented = readme_defaults()
    assert {"CALLS_SYNC_LEASE_SECONDS", "ORIGINATE_BUDGET_SECONDS", "ROUTE_CACHE_SECONDS"} <= documented.keys()
    assert code_defaults(sorted(documented)) == documented
