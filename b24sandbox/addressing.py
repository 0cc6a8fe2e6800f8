"""How portals and the OAuth server are addressed in each mode.

In-process (through ``responses``) every portal is its own virtual host ``https://{domain}`` and the OAuth
server is ``https://{oauth_host}``. As a real HTTP server everything lives under one ``base`` URL, with
path-based hosts: ``{base}/portal/{domain}`` and ``{base}/oauth``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Addressing:
    server_base: str | None  # "http://127.0.0.1:8001" in server mode, None in-process
    oauth_host: str
    scheme: str = "https"  # in-process scheme (a test may address a portal over http to see "Https required")

    def portal_base(self, domain: str) -> str:
        if self.server_base:
            return f"{self.server_base}/portal/{domain}"
        return f"{self.scheme}://{domain}"

    def client_endpoint(self, domain: str) -> str:
        return f"{self.portal_base(domain)}/rest/"

    @property
    def oauth_base(self) -> str:
        if self.server_base:
            return f"{self.server_base}/oauth"
        return f"{self.scheme}://{self.oauth_host}"

    @property
    def server_endpoint(self) -> str:
        return f"{self.oauth_base}/rest/"

    @property
    def oauth_domain(self) -> str:
        """The OAuth server's domain as token responses report it (not the portal: docs/bitrix24-contract.md §1.7)."""
        return self.oauth_base.split("://", 1)[1]

    def domain_field(self, domain: str) -> str:
        """What goes into DOMAIN / auth[domain]: chosen so that ``{protocol}://{DOMAIN}/rest/`` is the client
        endpoint in both modes (in server mode it carries the path prefix)."""
        return self.portal_base(domain).split("://", 1)[1]

    def protocol_field(self, domain: str) -> str:
        return "1" if self.portal_base(domain).startswith("https://") else "0"
