"""Recording pipeline: SSRF-safe download or PBX-uploaded file -> wav/mp3 -> Bitrix24 attachRecord.

Public API (see docs/architecture.md, "Recordings"):
``transfer_recording`` (framework-free core) and ``services.deliver_recording`` (the state
machine's entry point); errors in ``errors``.
"""

from .download import FetchLimits, FetchPolicy, download_recording
from .errors import (
    CallNotFinished,
    ConversionFailed,
    DownloadFailed,
    IntegrityMismatch,
    RecordingError,
    RecordingTooLarge,
    SourceRefused,
    UnsupportedFormat,
    UploadFailed,
)
from .transfer import CallInfo, RecordingSource, TransferResult, transfer_recording

__all__ = [
    "CallInfo",
    "CallNotFinished",
    "ConversionFailed",
    "DownloadFailed",
    "FetchLimits",
    "FetchPolicy",
    "IntegrityMismatch",
    "RecordingError",
    "RecordingSource",
    "RecordingTooLarge",
    "SourceRefused",
    "TransferResult",
    "UnsupportedFormat",
    "UploadFailed",
    "download_recording",
    "transfer_recording",
]
