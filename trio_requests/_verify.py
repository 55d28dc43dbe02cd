"""The Session's ``verify=`` argument, made an SSLContext."""

from __future__ import annotations

import os
import ssl

Verify = bool | str | ssl.SSLContext


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """Raises ValueError for a CA bundle that cannot be read (missing,
    unreadable, not PEM), naming the path."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return ssl.create_default_context()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        try:
            if os.path.isdir(verify):
                return ssl.create_default_context(capath=verify)
            return ssl.create_default_context(cafile=verify)
        except OSError as exc:  # ssl.SSLError included: not PEM, no certificate
            reason = exc.strerror or str(exc)
            raise ValueError(f"cannot load CA certificates from {verify!r}: {reason}") from exc
    raise TypeError(f"verify must be a bool, a CA bundle path or an ssl.SSLContext, not {verify!r}")
