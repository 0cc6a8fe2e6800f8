"""Framework-free Bitrix24 REST client (contract: docs/architecture.md, section b24client).

No Django imports anywhere in this package: it is used by the Django app, the sandbox tests and
the vendor's other tools alike.
"""

from . import coordination, errors, observe, phparray, redact
from .client import Bitrix24Client
from .credentials import Credentials, TokenStore
from .envelope import BatchResult, RestResult
from .oauth import OAuthApp, credentials_from_token_response

__all__ = [
    "BatchResult",
    "Bitrix24Client",
    "Credentials",
    "OAuthApp",
    "RestResult",
    "TokenStore",
    "coordination",
    "credentials_from_token_response",
    "errors",
    "observe",
    "phparray",
    "redact",
]
