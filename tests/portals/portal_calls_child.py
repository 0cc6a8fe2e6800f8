"""Child process for the e2e tests: build the Bitrix24 client for a portal and call a method N times.

    python tests/portals/portal_calls_child.py PORTAL_ID METHOD [--count N] [--barrier DIR]

Prints one JSON line: {"ok": n, "errors": [...], "started": t0, "finished": t1}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("portal_id", type=int)
    parser.add_argument("method")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--barrier", type=Path)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")
    import django

    django.setup()
    from b24client import errors
    from portals.services import bitrix24_client_for

    if args.barrier:
        (args.barrier / f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while not (args.barrier / "go").exists():
            if time.monotonic() > deadline:
                print("barrier never opened", file=sys.stderr)
                return 2
            time.sleep(0.005)

    started = time.time()
    ok, failures = 0, []
    client = bitrix24_client_for(args.portal_id)
    for _ in range(args.count):
        try:
            client.call(args.method)
            ok += 1
        except errors.Bitrix24Error as exc:
            failures.append(f"{type(exc).__name__}:{exc.code}")
    print(json.dumps({"ok": ok, "errors": failures, "started": started, "finished": time.time()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
