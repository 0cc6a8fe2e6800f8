"""What can go wrong while moving a recording, classified for the caller's retry policy.

The state machine owns scheduling: it reads ``retryable`` and ``retry_after`` and decides when
(or whether) to try again. ``reason`` is shown to the PBX vendor and the portal admin, so it is
plain language and never contains a credential or a token-bearing URL.
"""

from __future__ import annotations


class RecordingError(Exception):
    """Base class. ``retryable`` False means: trying again cannot help, record ``reason``."""

    retryable: bool = False

    def __init__(self, reason: str, *, retryable: bool | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after


class SourceRefused(RecordingError):
    """The URL or path is not one this connection may fetch (SSRF guard, allow-list, scheme)."""


class DownloadFailed(RecordingError):
    """The PBX did not deliver the file: network error, timeout, HTTP error status."""


class RecordingTooLarge(RecordingError):
    """Bigger than settings.RECORDING_MAX_BYTES; the partial file has been removed."""


class IntegrityMismatch(RecordingError):
    """sha256 or size differs from what the event announced (the PBX may still be writing it)."""

    retryable = True


class UnsupportedFormat(RecordingError):
    """Not audio we can send to Bitrix24 (only wav/mp3), and no way to convert it."""


class ConversionFailed(RecordingError):
    """ffmpeg was found but could not turn the file into mp3."""


class CallNotFinished(RecordingError):
    """Bitrix24 accepts a recording only after telephony.externalCall.finish."""

    retryable = True


class UploadFailed(RecordingError):
    """attachRecord or the uploadUrl POST failed; ``retryable`` follows the Bitrix24 error class."""
