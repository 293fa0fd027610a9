"""What stands between the network and the models: the settings of one service (limits, batching,
timeouts), the bearer token (from ``MEDTUNE_API_TOKEN`` or a token file, compared in constant time)
and the rule that a service on a non-loopback address has a token.

Nothing here imports FastAPI: the command line checks all of it before the extra is needed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medtune.inference.predictor import MODES
from medtune.serve.errors import ServiceError

TOKEN_ENV = "MEDTUNE_API_TOKEN"
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class ServeSettings:
    """Limits, batching and timeouts of one service (the ``medtune serve`` options)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_documents: int = 64
    max_chars: int = 200_000
    batch_size: int = 16
    max_wait_ms: float = 5.0
    max_batch_chars: int = 8_000
    max_queue: int = 1024
    long_chars: int = 10_000
    timeout_s: float = 60.0
    mode: str = "auto"
    model_batch_size: int = 32
    threads: int | None = None
    model_workers: int = 1
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    def check(self) -> "ServeSettings":
        positive = {"--max-body-bytes": self.max_body_bytes, "--max-documents": self.max_documents,
                    "--max-chars": self.max_chars, "--batch-size": self.batch_size,
                    "--max-batch-chars": self.max_batch_chars, "--max-queue": self.max_queue,
                    "--timeout": self.timeout_s, "--model-batch-size": self.model_batch_size,
                    "--model-workers": self.model_workers}
        for option, value in positive.items():
            if not value > 0:
                raise ServiceError("E630", f"{option} must be positive, not {value}",
                                   fix=f"give {option} a value of 1 or more")
        if self.long_chars < 0:
            raise ServiceError("E630", f"--long-chars must be 0 (one lane) or positive, not {self.long_chars}",
                               fix="e.g. --long-chars 10000: longer documents run on their own lane")
        if self.threads is not None and self.threads < 1:
            raise ServiceError("E630", f"--threads must be 1 or more, not {self.threads}",
                               fix="leave it out to use every core")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ServiceError("E630", f"--max-wait-ms must lie in [0, 1000], not {self.max_wait_ms}",
                               fix="a few milliseconds (the default is 5) fill a batch without delaying a lone request")
        if self.mode not in MODES:
            raise ServiceError("E630", f"unknown inference mode '{self.mode}'", fix=f"use one of: {', '.join(MODES)}")
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ServiceError("E630", "a --cors-origin must be one exact origin such as https://ehr.example.org "
                                           "(a wildcard is refused)", fix="list each allowed origin once")
        return self

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cors_origins"] = list(self.cors_origins)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ServeSettings":
        return cls(**{**data, "cors_origins": tuple(data.get("cors_origins") or ())}).check()


def load_token(token_file: str | Path | None = None, environ: dict[str, str] | None = None) -> str | None:
    """The service's token: the first line of ``token_file`` when given, else ``MEDTUNE_API_TOKEN``, else None.

    A token file must hold one non-empty line (a trailing newline is fine); errors say what is wrong
    with it without showing any of its content.
    """
    env = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise ServiceError("E612", f"cannot read the token file {path} ({type(err).__name__})",
                               fix="give --token-file a readable file holding the token on one line") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ServiceError("E612", f"the token file {path} is not UTF-8 text",
                               fix="write the token as plain text on one line") from None
        lines = text.splitlines()
        if len(lines) != 1 or not lines[0].strip():
            raise ServiceError("E612", f"the token file {path} must hold exactly one non-empty line, "
                                       f"not {len(lines)} lines", fix="write the token alone on one line")
        return _checked(lines[0].strip(), f"the token in {path}")
    value = env.get(TOKEN_ENV)
    if value is None or not value.strip():
        return None
    return _checked(value.strip(), TOKEN_ENV)


def _checked(token: str, where: str) -> str:
    if len(token) < 16:
        raise ServiceError("E612", f"{where} has {len(token)} characters; a bearer token needs at least 16",
                           fix="generate one, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable() or " " in token:
        raise ServiceError("E612", f"{where} must be printable ASCII without spaces, at most "
                                   f"{MAX_TOKEN_LENGTH} characters", fix="use e.g. secrets.token_urlsafe(32)")
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); any other name or address is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token is None and not is_loopback(host):
        raise ServiceError("E611", f"refusing to listen on the non-loopback address {host!r} without a token",
                           fix=f"set {TOKEN_ENV} or pass --token-file FILE (clients then send "
                               "'Authorization: Bearer TOKEN'), or keep --host 127.0.0.1")


def token_matches(expected: str, header: str | None) -> bool:
    """Whether an ``Authorization`` header carries the bearer token (constant-time comparison)."""
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8"))
