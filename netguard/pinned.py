"""A ``requests`` transport adapter that connects to one already-checked address for one host name.

Resolving the name again at connect time would let a DNS answer that changed since the check (rebinding)
send the request to an internal address. TLS is unchanged: SNI and the certificate check use the name.
Environment proxies are not used by a pinned connection (the check was for this address, not a proxy's).
"""

from __future__ import annotations

from typing import Any

from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidURL
from urllib3 import HTTPConnectionPool

from .addresses import normalise_host


class PinnedAddressAdapter(HTTPAdapter):
    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self.host = normalise_host(host)
        self.address = address
        super().__init__(**kwargs)

    def get_connection_with_tls_context(self, request: PreparedRequest, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if normalise_host(host_params["host"]) != self.host:
            raise InvalidURL(f"this connection is pinned to {self.host}, not {host_params['host']}")
        if host_params["scheme"] == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self.host, "assert_hostname": self.host}
        return self.poolmanager.connection_from_host(
            host=self.address, port=host_params["port"], scheme=host_params["scheme"], pool_kwargs=pool_kwargs
        )

    def add_headers(self, request: PreparedRequest, **kwargs: Any) -> None:
        # The pool is keyed on the address; the server still gets the name it serves.
        host = request.url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1] if request.url else self.host
        request.headers["Host"] = host
