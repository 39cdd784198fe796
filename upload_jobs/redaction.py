"""Masking of credential values in log records and error text, wherever they come from."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
# Shorter values are stand-ins, not keys (real ones are 20-40+ characters); masking them
# would garble ordinary words.
MIN_SECRET_CHARS = 8
# botocore's DEBUG logs print the Authorization header, which names the access key id.
_SIGV4_CREDENTIAL = re.compile(r"(Credential=)[^/\s,]+")

# Renders a record's traceback once, when the record is made, so it is masked before any handler.
_TRACEBACK_FORMATTER = logging.Formatter()

_secrets: set[str] = set()
_lock = threading.Lock()
_factory_installed = False


def register_secrets(*values: str | None) -> None:
    """Remember credential values to mask, and make sure every log record is masked."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)
    _install_record_factory()


def redact(text: str) -> str:
    """`text` with every registered credential value and SigV4 credential scope masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _SIGV4_CREDENTIAL.sub(rf"\g<1>{MASK}", text)


def _install_record_factory() -> None:
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem to report, not ours
            return record
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        _mask_traceback(record)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(masked_record)


def _mask_traceback(record: logging.LogRecord) -> None:
    """Mask the traceback a record carries: a chained library error (botocore's ClientError
    quoting the server's message, say) holds text our own messages never repeat."""
    if not isinstance(record.exc_info, tuple) or record.exc_info[0] is None:
        return
    formatted = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    masked = redact(formatted)
    if masked != formatted:
        # Formatters print exc_text when it is set; exc_info goes, so that no handler or
        # formatter that renders the exception itself (JSON, rich tracebacks) shows it unmasked.
        record.exc_info, record.exc_text = None, masked
