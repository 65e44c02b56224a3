"""The daemon's configuration: one pydantic model tree loaded from TOML.

Every secret can be written inline, read from `<key>_file`, or taken from the
environment with the inline form `"env:NAME"`. A relative `*_file` name is
looked up in systemd's `$CREDENTIALS_DIRECTORY` when that is set (the
service, with `LoadCredential=`); otherwise beside the config file, then in
the `credentials/` directory beside it, where `systemd/install.sh` keeps
them, so that admin commands run by root find the service's credentials
with no extra flag. Errors name the key they concern, never the secret's
value. An empty secret is never valid, whichever way it is given, and
neither is a placeholder left from `config.example.toml` (`whsec_change_me`).

Every problem in a file is reported at once: checks across keys (a secret
given twice or not at all, `allow_unsigned` without an API key) run on the
document as written, beside the keys' own checks, not after them.

What is valid but unwise (a short webhook secret) is not an error: `Config.warnings()`
lists it, one line per key, for `check-config` and `doctor` to show.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .encryption import PayloadCipher, PayloadKeyError, load_key
from .mysql_url import MysqlTarget, parse_mysql_url
from .status_rules import StatusRules

__all__ = [
    "CREDENTIALS_SUBDIRECTORY",
    "CRYPTUM_API_URLS",
    "EXAMPLE_PLACEHOLDERS",
    "MIN_WEBHOOK_SECRET_LENGTH",
    "Config",
    "ConfigError",
    "CredentialFileError",
    "ListenAddress",
    "StoreConfig",
    "credential_candidates",
    "default_config_path",
    "load_config",
    "parse_config",
]

CRYPTUM_API_URLS = {
    "production": "https://api.cryptum.io/plugins",
    "test": "https://api-hml.cryptum.io/plugins",
}
DEFAULT_DATABASE_NAME = "bridge.sqlite3"
# Shorter webhook secrets load with a warning: an HMAC key that short may be
# guessed offline from one captured callback and its signature.
MIN_WEBHOOK_SECRET_LENGTH = 16
_STORE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Where systemd/install.sh keeps the credential files: beside the config.
CREDENTIALS_SUBDIRECTORY = "credentials"
# The secrets config.example.toml ships with. Left in place they would sign
# and authenticate with values anyone can read in this repository.
EXAMPLE_PLACEHOLDERS = frozenset({"whsec_change_me", "ck_change_me", "cs_change_me"})
# What to do about a placeholder, by the key that holds it.
_PLACEHOLDER_FIXES = {
    "webhook_secret": "set the secret from the Cryptum dashboard",
    "webhook_secret_file": "write the secret from the Cryptum dashboard in the file",
    "cryptum_api_key": "set the API key from the Cryptum dashboard",
    "cryptum_api_key_file": "write the API key from the Cryptum dashboard in the file",
    "consumer_key": "set the consumer key of a WooCommerce REST API key with Read/Write "
    "permission (WooCommerce > Settings > Advanced > REST API)",
    "consumer_key_file": "write the consumer key of a WooCommerce REST API key with "
    "Read/Write permission in the file",
    "consumer_secret": "set the consumer secret of that WooCommerce REST API key",
    "consumer_secret_file": "write the consumer secret of that WooCommerce REST API key "
    "in the file",
}


class CredentialFileError(ValueError):
    """A `*_file` that cannot be read: `paths` were tried, `error` is why the last one failed."""

    def __init__(self, message: str, paths: list[Path], error: OSError) -> None:
        super().__init__(message)
        self.paths = paths
        self.error = error


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per bad key.

    `unreadable` maps a problem line to the credential file it is about, so
    that `doctor` can say what keeps it from being read.
    """

    def __init__(
        self, problems: list[str], unreadable: dict[str, CredentialFileError] | None = None
    ) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.unreadable = unreadable or {}


def _is_placeholder(value: str) -> bool:
    # "…" stands for a value in the docs' examples (printf '%s' 'whsec_…' > webhook_secret).
    return value in EXAMPLE_PLACEHOLDERS or "change_me" in value.lower() or "\u2026" in value


def _refuse_placeholder(value: str, info: ValidationInfo) -> str:
    if _is_placeholder(value):
        fix = _PLACEHOLDER_FIXES.get(info.field_name or "", "set the real value")
        raise ValueError(f"still the example's placeholder; {fix}")
    return value


def _secret_from_env(value: Any, info: ValidationInfo) -> Any:
    """Resolve the inline form `"env:NAME"`, refusing an empty secret; other values pass through."""
    if not isinstance(value, str):
        return value  # None, or a wrong type that the field's own check names
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        if not os.environ[name]:
            raise ValueError(f"must not be empty (environment variable {name} is empty)")
        return _refuse_placeholder(os.environ[name], info)
    if not value:
        # Never meant: HMAC takes an empty key without complaint (anyone could
        # sign callbacks), and an empty API key would only fail at its first use.
        raise ValueError("must not be empty")
    return _refuse_placeholder(value, info)


def credential_candidates(value: str, base_dir: Path) -> list[Path]:
    """Where a `*_file` value is looked for, in order (see the module docstring)."""
    path = Path(value)
    if path.is_absolute():
        return [path]
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        return [Path(credentials) / path]
    return [base_dir / path, base_dir / CREDENTIALS_SUBDIRECTORY / path]


def _unreadable(path: Path, error: OSError) -> CredentialFileError:
    return CredentialFileError(f"cannot read {path}: {error.strerror or error}", [path], error)


def _locate_credential(value: str, info: ValidationInfo) -> Path:
    """The first candidate that exists; one that cannot even be looked at stops the search."""
    candidates = credential_candidates(value, (info.context or {}).get("base_dir", Path()))
    missing: OSError | None = None
    for candidate in candidates:
        try:
            candidate.stat()
        except (FileNotFoundError, NotADirectoryError) as error:
            missing = error
        except OSError as error:
            # Not "missing": a file that root keeps from this user must not
            # be passed over for another one further down the list.
            raise _unreadable(candidate, error) from None
        else:
            return candidate
    assert missing is not None
    tried = " or ".join(str(candidate) for candidate in candidates)
    raise CredentialFileError(f"cannot read {tried}: no such file", candidates, missing)


def _secret_from_file(value: Any, info: ValidationInfo) -> Any:
    """Read a `*_file` secret; the path is resolved as the module docstring says."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a file path")
    path = _locate_credential(value, info)
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise _unreadable(path, error) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not secret:
        raise ValueError(f"must not be empty ({path} is empty)")
    return _refuse_placeholder(secret, info)


def _key_from_file(value: Any, info: ValidationInfo) -> Any:
    """Read a 32-byte encryption key file (base64 or hex); the path resolves like secrets."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a file path")
    path = _locate_credential(value, info)
    try:
        return load_key(path)
    except OSError as error:
        raise _unreadable(path, error) from None
    except (PayloadKeyError, UnicodeDecodeError):
        raise ValueError(f"{path} does not hold a 32-byte key in base64 or hex") from None


InlineSecret = Annotated[SecretStr | None, BeforeValidator(_secret_from_env)]
KeyFile = Annotated[SecretBytes | None, BeforeValidator(_key_from_file)]
SecretFile = Annotated[SecretStr | None, BeforeValidator(_secret_from_file)]


def _one_secret(model: BaseModel, key: str) -> SecretStr | None:
    """The secret from whichever of `key` and `key_file` is set (`_secret_problems` checks)."""
    inline: SecretStr | None = getattr(model, key)
    from_file: SecretStr | None = getattr(model, f"{key}_file")
    return inline if inline is not None else from_file


Problem = tuple[tuple[str | int, ...], str]


def _secret_problems(data: dict[str, Any], key: str, *, required: bool) -> list[Problem]:
    """A secret given both inline and as a file, or (when required) neither way."""
    inline, from_file = data.get(key) is not None, data.get(f"{key}_file") is not None
    if inline and from_file:
        return [((), f"set either {key} or {key}_file, not both")]
    if required and not inline and not from_file:
        return [((), f"{key} (or {key}_file) is required")]
    return []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _with_problems(
    title: str, error: ValidationError | None, problems: list[Problem]
) -> ValidationError:
    """One error holding the keys' own problems and those found across keys."""
    details: list[InitErrorDetails] = []
    if error is not None:
        for item in error.errors(include_url=False):
            # A custom error keeps the message and context (a CredentialFileError
            # for doctor) whatever pydantic's own type of it was.
            custom = PydanticCustomError(item["type"], item["msg"], item.get("ctx"))
            details.append({"type": custom, "loc": item["loc"], "input": item["input"]})
    for location, message in problems:
        custom = PydanticCustomError("value_error", "Value error, {reason}", {"reason": message})
        # Not the table itself as the input: it may hold secrets.
        details.append({"type": custom, "loc": location, "input": None})
    return ValidationError.from_exception_data(title, details)


class _Section(BaseModel):
    # Unknown keys are errors so that a typo never silently falls back to a default.
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        """Checks over several keys, on the table as written; none by default."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _report_every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A model validator of mode "after" runs only once every key is valid,
        # so one bad key would hide a missing secret until the next try.
        problems = cls._problems_across_keys(data) if isinstance(data, dict) else []
        try:
            model = handler(data)
        except ValidationError as error:
            if not problems:
                raise
            raise _with_problems(cls.__name__, error, problems) from None
        if problems:
            raise _with_problems(cls.__name__, None, problems)
        return model


class ListenAddress(BaseModel):
    """Where the HTTP server listens: a TCP host and port, or a unix socket path."""

    host: str | None = None
    port: int | None = None
    unix_path: str | None = None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"{self.host}:{self.port}"


def _parse_listen(value: str) -> ListenAddress:
    if value.startswith("unix:"):
        path = value.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError("a unix socket path must be absolute, as in unix:/run/x/sock")
        return ListenAddress(unix_path=path)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError('must be "host:port" or "unix:/path/to/socket"')
    return ListenAddress(host=host.strip("[]"), port=int(port))


class ServerConfig(_Section):
    """The HTTP listener."""

    listen: str = Field(
        default="127.0.0.1:8787",
        description='"host:port", or "unix:/run/cryptum-bridge/sock"; port 0 picks a free port',
    )
    max_body_bytes: int = Field(
        default=65536, ge=1024, le=10 * 1024 * 1024, description="Larger callbacks get 413."
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A connection must deliver a whole request head within this of opening, "
        "or of its previous answer, or it is closed (slowloris clients, idle keep-alive).",
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A callback body must arrive within this; a slower one gets 408.",
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="On SIGTERM, how long in-flight requests may take to finish.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _parse_listen(value)
        return value

    @property
    def address(self) -> ListenAddress:
        return _parse_listen(self.listen)


# Keys that mean something only with a MySQL `url`.
_MYSQL_ONLY_KEYS = ("password", "password_file", "tls", "tls_ca_file")


class StorageConfig(_Section):
    """Where events and deliveries are kept: a SQLite file (`path`) or a MySQL database (`url`)."""

    path: Path | None = Field(
        default=None,
        description="SQLite database file; default $STATE_DIRECTORY/bridge.sqlite3, else "
        "./bridge.sqlite3.",
    )
    url: str | None = Field(
        default=None,
        description='Instead of path: "mysql://user@host:port/database" (MySQL 8, MariaDB '
        ">= 10.6), for several bridges on one database.",
    )
    password: InlineSecret = Field(
        default=None, description='The MySQL user\'s password, inline or "env:NAME".'
    )
    password_file: SecretFile = Field(
        default=None, description="File holding the MySQL user's password."
    )
    tls: bool = Field(
        default=False,
        description="Connect to MySQL over TLS, verifying its certificate and host name.",
    )
    tls_ca_file: Path | None = Field(
        default=None, description="CA bundle for the MySQL server's certificate (with tls)."
    )
    pool_size: int = Field(
        default=10, ge=2, le=200, description="Most connections to MySQL this bridge opens."
    )
    retention_days: int = Field(
        default=90, ge=1, description="Personal data in stored payloads is purged after this."
    )
    busy_timeout_ms: int = Field(
        default=5000,
        ge=0,
        le=60000,
        description="SQLite: how long a write waits for a lock held by another process before 503.",
    )
    encryption_key_file: KeyFile = Field(
        default=None,
        description="Encrypt stored payloads (AES-256-GCM) with the key in this file.",
    )
    previous_key_files: list[KeyFile] = Field(
        default=[],
        description="Earlier keys, to read payloads sealed before a key rotation.",
    )
    commit_batch_max: int = Field(
        default=256,
        ge=1,
        # Eleven bound parameters per callback, in a statement with places for
        # the next power of two (1024 at most); SQLite allows 32766 per statement.
        le=1000,
        description="Most callbacks committed together in one transaction; 1 turns grouping off.",
    )

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        problems = _secret_problems(data, "password", required=False)
        if data.get("url") is None:
            mysql_only = [k for k in _MYSQL_ONLY_KEYS if data.get(k) not in (None, False)]
            problems += [((), f"{key} is for a MySQL storage: set url too") for key in mysql_only]
        elif data.get("path") is not None:
            problems.append(((), "set either path (SQLite) or url (MySQL), not both"))
        return problems

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_mysql_url(value)
        return value

    @model_validator(mode="after")
    def _resolve_password(self) -> StorageConfig:
        self.password = _one_secret(self, "password")
        self.password_file = None
        return self

    @property
    def engine(self) -> Literal["sqlite", "mysql"]:
        return "mysql" if self.url is not None else "sqlite"

    @property
    def mysql(self) -> MysqlTarget:
        """The MySQL server and database `url` names (only with `url`)."""
        if self.url is None:
            raise ValueError("storage.url is not set")
        return parse_mysql_url(self.url)

    def describe(self) -> str:
        """Where the storage is, for people and logs: a file, or a URL with no secret."""
        return self.mysql.display() if self.url is not None else str(self.database_path)

    def warnings(self) -> list[str]:
        """What is valid but unwise, one line per key (relative to this section)."""
        if self.url is not None and not self.tls and not self.mysql.is_local:
            return [
                "storage.tls: off for a MySQL server on another machine; callbacks and the "
                "password cross the network in the clear"
            ]
        return []

    def cipher(self) -> PayloadCipher | None:
        """The payload cipher, when a key is configured."""
        if self.encryption_key_file is None:
            return None
        previous = [key.get_secret_value() for key in self.previous_key_files if key is not None]
        return PayloadCipher(self.encryption_key_file.get_secret_value(), previous)

    @property
    def database_path(self) -> Path:
        if self.path is not None:
            return self.path
        state = os.environ.get("STATE_DIRECTORY")
        # systemd may pass several directories separated by colons; ours is the first.
        base = Path(state.split(":")[0]) if state else Path.cwd()
        return base / DEFAULT_DATABASE_NAME


class LoggingConfig(_Section):
    """Log output."""

    format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json: one object per line; console: for people; auto: console on a TTY.",
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The least severe log lines written."
    )


class DeliveryConfig(_Section):
    """Delivery of accepted callbacks to WooCommerce."""

    concurrency: int = Field(default=4, ge=1, le=64, description="Parallel orders per store.")
    timeout_seconds: float = Field(
        default=15, gt=0, le=300, description="Each request to WooCommerce or Cryptum's API."
    )
    max_age_hours: float = Field(
        default=72, gt=0, description="Then the delivery is dead-lettered."
    )
    backoff_initial_seconds: float = Field(
        default=5, gt=0, description="The first retry's window; each one after doubles it."
    )
    backoff_max_seconds: float = Field(
        default=3600, gt=0, description="The longest wait between retries (and after a 401/403)."
    )
    confirm_recheck_seconds: float = Field(
        default=300,
        ge=0,
        description="While Cryptum's API and a callback name two different final statuses, "
        "ask again for this long, then act on the API. A callback the API lags behind is "
        "waited for until reconcile.lookback_hours instead.",
    )

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        fields = cls.model_fields
        initial = _number(
            data.get("backoff_initial_seconds", fields["backoff_initial_seconds"].default)
        )
        most = _number(data.get("backoff_max_seconds", fields["backoff_max_seconds"].default))
        if initial is not None and most is not None and initial > most:
            return [((), "backoff_initial_seconds must not exceed backoff_max_seconds")]
        return []


class ReconcileConfig(_Section):
    """Finding payments whose callback never arrived (stores with an API key)."""

    interval_seconds: float = Field(
        default=300, ge=1, description="Also runs once at start, to catch up after downtime."
    )
    lookback_hours: float = Field(
        default=48,
        gt=0,
        description="How far back each listing looks, and how long a callback is waited on "
        "while Cryptum's API lags behind it.",
    )


class WooCommerceConfig(_Section):
    """How to reach one shop's WooCommerce REST API."""

    url: str = Field(description="WordPress's home URL, exactly as WordPress knows it.")
    consumer_key: InlineSecret = Field(
        default=None, description='WooCommerce REST key ("ck_..."), inline or "env:NAME".'
    )
    consumer_key_file: SecretFile = Field(
        default=None, description="A file holding the consumer key (e.g. a systemd credential)."
    )
    consumer_secret: InlineSecret = Field(
        default=None, description='WooCommerce REST secret ("cs_..."), inline or "env:NAME".'
    )
    consumer_secret_file: SecretFile = Field(
        default=None, description="A file holding the consumer secret."
    )
    auth: Literal["auto", "basic", "oauth1"] = Field(
        default="auto", description="auto: Basic over https, OAuth 1.0a over http."
    )
    ca_file: Path | None = Field(default=None, description="Extra CA bundle for the shop's TLS.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http:// or https:// URL with no query or fragment")
        return value.rstrip("/")

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        return _secret_problems(data, "consumer_key", required=True) + _secret_problems(
            data, "consumer_secret", required=True
        )

    @model_validator(mode="after")
    def _resolve_secrets(self) -> WooCommerceConfig:
        self.consumer_key = _one_secret(self, "consumer_key")
        self.consumer_secret = _one_secret(self, "consumer_secret")
        self.consumer_key_file = self.consumer_secret_file = None
        return self


class RulesConfig(_Section):
    """What each Cryptum status does to an order, where the contract leaves a choice."""

    confirmed: Literal["pay", "ignore"] = Field(
        default="pay", description="pay: mark the order paid (checks permitting)."
    )
    on_hold: Literal["on-hold", "ignore"] = Field(
        default="on-hold", description="Put a pending order on hold."
    )
    failed: Literal["failed", "cancelled", "ignore"] = Field(
        default="failed", description="Move a pending or on-hold order to failed (or cancelled)."
    )
    cancelled: Literal["cancelled", "ignore"] = Field(
        default="cancelled", description="Cancel a pending, on-hold or failed order."
    )

    def as_status_rules(self) -> StatusRules:
        return StatusRules(
            confirmed=self.confirmed,
            on_hold=self.on_hold,
            failed=self.failed,
            cancelled=self.cancelled,
        )


class StoreConfig(_Section):
    """One Cryptum store and the WooCommerce shop it pays for."""

    name: str = Field(description="Used in /callbacks/cryptum/{name}, logs and the database.")
    cryptum_store_id: str = Field(
        min_length=1, description="The store id Cryptum sends as storeId."
    )
    cryptum_environment: Literal["production", "test"] = Field(
        default="production", description="Which Cryptum API the key belongs to."
    )
    webhook_secret: InlineSecret = Field(
        default=None, description='The secret Cryptum signs callbacks with, inline or "env:NAME".'
    )
    webhook_secret_file: SecretFile = Field(
        default=None, description="A file holding the webhook secret."
    )
    cryptum_api_key: InlineSecret = Field(
        default=None, description="Enables confirming callbacks with the API, and reconciliation."
    )
    cryptum_api_key_file: SecretFile = Field(
        default=None, description="A file holding the Cryptum API key."
    )
    cryptum_api_url: str | None = Field(
        default=None, description="Overrides the environment's API base URL."
    )
    allow_unsigned: bool = Field(
        default=False,
        # Strict, so that the check across keys reads the value as written:
        # TOML has true and false, and a string "true" is a typo, not a yes.
        strict=True,
        description="Accept callbacks without a signature; needs cryptum_api_key, since "
        "confirmation with the API is then the only check.",
    )
    unsigned_callbacks_per_minute: int = Field(
        default=60,
        ge=1,
        description="With allow_unsigned: most new unsigned callbacks stored per minute; "
        "more get 429 with Retry-After. Signed callbacks and duplicates are not counted.",
    )
    payment_method: str = Field(
        default="cryptumcheckout_gateway",
        min_length=1,
        description="The WooCommerce gateway id of Cryptum; other orders are never changed.",
    )
    rules: RulesConfig = Field(
        default=RulesConfig(), description="What each Cryptum status does to the order."
    )
    woocommerce: WooCommerceConfig = Field(description="The shop's REST API.")

    # Which key the webhook secret came from, so that a warning names the one to edit.
    _webhook_secret_key: str = PrivateAttr(default="webhook_secret")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _STORE_NAME.match(value):
            raise ValueError("use 1-64 lower-case letters, digits, '-' or '_'")
        return value

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        unsigned = data.get("allow_unsigned") is True
        problems = _secret_problems(data, "webhook_secret", required=not unsigned)
        problems += _secret_problems(data, "cryptum_api_key", required=False)
        has_api_key = any(
            data.get(k) is not None for k in ("cryptum_api_key", "cryptum_api_key_file")
        )
        if unsigned and not has_api_key:
            problems.append(
                (
                    (),
                    "allow_unsigned needs cryptum_api_key (or cryptum_api_key_file): without a "
                    "signature, confirming each callback with Cryptum's API is the only check left",
                )
            )
        return problems

    @model_validator(mode="after")
    def _resolve_secrets(self) -> StoreConfig:
        if self.webhook_secret_file is not None:
            self._webhook_secret_key = "webhook_secret_file"
        self.webhook_secret = _one_secret(self, "webhook_secret")
        self.cryptum_api_key = _one_secret(self, "cryptum_api_key")
        self.webhook_secret_file = self.cryptum_api_key_file = None
        return self

    @property
    def api_base_url(self) -> str:
        return (self.cryptum_api_url or CRYPTUM_API_URLS[self.cryptum_environment]).rstrip("/")

    def secret_values(self) -> list[str]:
        """Every secret of this store, for scrubbing and tests."""
        secrets = [self.webhook_secret, self.cryptum_api_key]
        secrets += [self.woocommerce.consumer_key, self.woocommerce.consumer_secret]
        return [secret.get_secret_value() for secret in secrets if secret is not None]

    def warnings(self) -> list[str]:
        """What is valid but unwise, one line per key (relative to this store); never a value."""
        found = []
        secret = self.webhook_secret
        if secret is not None and len(secret.get_secret_value()) < MIN_WEBHOOK_SECRET_LENGTH:
            found.append(
                f"{self._webhook_secret_key}: shorter than {MIN_WEBHOOK_SECRET_LENGTH} "
                "characters; use a long random secret"
            )
        return found


class Config(_Section):
    """The whole daemon."""

    server: ServerConfig = Field(default=ServerConfig(), description="The HTTP listener.")
    storage: StorageConfig = Field(default=StorageConfig(), description="Where events are kept.")
    logging: LoggingConfig = Field(default=LoggingConfig(), description="The log's form.")
    delivery: DeliveryConfig = Field(
        default=DeliveryConfig(), description="How updates reach WooCommerce."
    )
    reconcile: ReconcileConfig = Field(
        default=ReconcileConfig(), description="Finding payments whose callback never came."
    )
    stores: list[StoreConfig] = Field(min_length=1, description="One or more shops.")

    @classmethod
    def _problems_across_keys(cls, data: dict[str, Any]) -> list[Problem]:
        stores = data.get("stores")
        if not isinstance(stores, list):
            return []
        problems: list[Problem] = []
        for attribute in ("name", "cryptum_store_id"):
            first_seen: dict[str, int] = {}
            for index, store in enumerate(stores):
                value = (
                    store.get(attribute)
                    if isinstance(store, dict)
                    else getattr(store, attribute, None)
                )
                if not isinstance(value, str):
                    continue
                earlier = first_seen.setdefault(value, index)
                if earlier != index:
                    problems.append(
                        (
                            ("stores",),
                            f"stores[{index}] has the same {attribute} as stores[{earlier}]",
                        )
                    )
        return problems

    def warnings(self) -> list[str]:
        """What is valid but unwise, one line per key (`stores[0].webhook_secret: …`)."""
        return self.storage.warnings() + [
            f"stores[{index}].{warning}"
            for index, store in enumerate(self.stores)
            for warning in store.warnings()
        ]

    def store_named(self, name: str) -> StoreConfig | None:
        for store in self.stores:
            if store.name == name:
                return store
        return None

    def store_for_cryptum_id(self, cryptum_store_id: str) -> StoreConfig | None:
        # Looked up for every callback: a plain loop costs a third of next() over a generator.
        for store in self.stores:
            if store.cryptum_store_id == cryptum_store_id:
                return store
        return None


def _key_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def parse_config(document: dict[str, Any], *, base_dir: Path) -> Config:
    """Validate a decoded TOML document, raising `ConfigError` with one line per problem."""
    try:
        return Config.model_validate(document, context={"base_dir": base_dir})
    except ValidationError as error:
        problems = []
        unreadable: dict[str, CredentialFileError] = {}
        for item in error.errors(include_url=False, include_input=False):
            message = item["msg"].removeprefix("Value error, ")
            problem = f"{_key_path(item['loc'])}: {message}"
            problems.append(problem)
            cause = item.get("ctx", {}).get("error")
            if isinstance(cause, CredentialFileError):
                unreadable[problem] = cause
        raise ConfigError(problems, unreadable) from None


def default_config_path() -> Path:
    return Path(os.environ.get("CRYPTUM_BRIDGE_CONFIG", "/etc/cryptum-bridge/config.toml"))


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError([f"config: cannot read {path}: {error.strerror or error}"]) from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError([f"config: {path} is not valid TOML: {error}"]) from None
    return parse_config(document, base_dir=path.resolve().parent)
