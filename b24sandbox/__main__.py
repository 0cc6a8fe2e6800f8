"""``python -m b24sandbox serve --port 8001 --app-url http://127.0.0.1:8000 [--seed demo]``

Runs the sandbox as a real HTTP server on the real clock, registers the app (client id/secret from
BITRIX24_CLIENT_ID / BITRIX24_CLIENT_SECRET, or the sandbox defaults), creates the demo portal and serves the
demo page at ``/``, where a person installs the app, clicks phone numbers and submits callback forms.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from b24sandbox.sandbox import Sandbox


def build_sandbox(args: argparse.Namespace) -> Sandbox:
    sb = Sandbox(clock=None, allow_http=True, seed=args.rng_seed)
    app_url = args.app_url.rstrip("/")
    sb.register_app(
        os.environ.get("BITRIX24_CLIENT_ID", "local.sandbox-app"),
        os.environ.get("BITRIX24_CLIENT_SECRET", "sandbox-client-secret"),
        scopes=[s for s in args.scopes.split(",") if s],
        app_url=app_url + args.app_path,
        installer_url=app_url + args.installer_path,
        install_event_url=(app_url + args.event_path) if args.install_event else None,
        redirect_uri=app_url + args.redirect_path,
    )
    sb.create_portal(args.domain, plan=args.plan, seed=args.seed)
    sb.demo_pbx_url = args.pbx_url  # type: ignore[attr-defined]
    return sb


def serve(args: argparse.Namespace) -> int:
    sb = build_sandbox(args)
    server = sb.serve(args.host, args.port)
    base = server.base_url
    print(f"Bitrix24 sandbox on {base}/  (Ctrl-C to stop)")
    print(f"  portal   {base}/portal/{args.domain}/rest/")
    print(f"  OAuth    {base}/oauth/oauth/token/   app.info: {base}/oauth/rest/app.info")
    print("  point the app at it with:")
    print(f"    BITRIX24_OAUTH_SERVER={base}/oauth BITRIX24_OAUTH_HOSTS=127.0.0.1 BITRIX24_ALLOW_HTTP=1")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m b24sandbox", description="Local Bitrix24 emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the sandbox HTTP server with a demo portal")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8001)
    run.add_argument("--app-url", required=True, help="base URL of the app, e.g. http://127.0.0.1:8000")
    run.add_argument("--seed", choices=["demo"], default=None, help="fill the portal with demo users and CRM")
    run.add_argument("--domain", default="demo.bitrix24.test")
    run.add_argument("--plan", choices=["standard", "enterprise"], default="standard")
    run.add_argument("--scopes", default="telephony,crm,user_basic,placement")
    run.add_argument("--installer-path", default="/bitrix24/install/")
    run.add_argument("--app-path", default="/bitrix24/app/")
    run.add_argument("--event-path", default="/bitrix24/events/")
    run.add_argument("--redirect-path", default="/bitrix24/oauth/callback/")
    run.add_argument("--install-event", action="store_true", help="also POST ONAPPINSTALL to --event-path")
    run.add_argument("--rng-seed", type=int, default=None, help="make the demo data reproducible")
    run.add_argument("--pbx-url", default=None, help="a PBX's web page to link from the demo page (the demo PBX)")
    run.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
