"""Who may read the metrics: a request with the bearer ``METRICS_TOKEN``, or one straight from an
allowed network (``METRICS_ALLOWED_NETWORKS``). A request that came through a proxy (it carries
``X-Forwarded-For``) is never admitted by its address: behind a local reverse proxy every public
request would look like 127.0.0.1."""

from __future__ import annotations

import hmac
import ipaddress

from ops.conf import ops_settings


def scrape_allowed(authorization: str | None, remote_addr: str | None, forwarded_for: str | None) -> bool:
    conf = ops_settings()
    if conf.metrics_token and authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), conf.metrics_token.encode()):
            return True
    if forwarded_for or not remote_addr or not conf.metrics_networks:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in conf.metrics_networks)
