"""The MySQL schema, as numbered migrations, and bringing a database up to date once.

The tables mirror SQLite's, with what SQLite's triggers do there done by
the engine's own statements inside the same transaction: creating a
trigger needs the SUPER privilege (or `log_bin_trust_function_creators`)
on a server with binary logging, which a managed or replicated MySQL
rarely grants. Every text column compares byte for byte (`utf8mb4_bin`),
as SQLite's do, so the dedupe key means the same on both engines.

Nodes starting together migrate once: each takes a named server lock
(`GET_LOCK`) for the database before it reads the version, so the others
wait, then find the schema up to date. MySQL commits each DDL statement on
its own, so a migration is written to be run again from the start if a
node dies halfway (`IF NOT EXISTS`), and its version is recorded last.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import StorageError
from .mysql_connection import Cursor, MysqlPool

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "read_version"]

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the whole schema of SQLite's version 5.
    (
        f"""
        CREATE TABLE IF NOT EXISTS events (
            id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            store            VARCHAR(64)  NOT NULL,
            body_sha256      BINARY(32)   NOT NULL,
            received_at      DOUBLE       NOT NULL,
            source           VARCHAR(16)  NOT NULL,
            signature_form   VARCHAR(32),
            request_id       VARCHAR(64),
            cryptum_order_id VARCHAR(200) NOT NULL,
            woo_order_id     VARCHAR(32)  NOT NULL,
            status           VARCHAR(200) NOT NULL,
            payload          MEDIUMBLOB   NOT NULL,
            facts            MEDIUMBLOB,
            redacted_at      DOUBLE,
            UNIQUE KEY events_identity (store, cryptum_order_id, status, body_sha256),
            KEY events_by_order (store, woo_order_id, id),
            KEY events_unredacted (redacted_at, received_at)
        ) {_TABLE_OPTIONS}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS deliveries (
            id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            event_id        BIGINT       NOT NULL,
            store           VARCHAR(64)  NOT NULL,
            woo_order_id    VARCHAR(32)  NOT NULL,
            state           VARCHAR(8)   NOT NULL DEFAULT 'pending',
            progress        VARCHAR(8)   NOT NULL DEFAULT 'new',
            decision        MEDIUMTEXT,
            generation      INT          NOT NULL DEFAULT 1,
            attempts        INT          NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE       NOT NULL,
            lease_until     DOUBLE,
            age_from        DOUBLE       NOT NULL,
            last_error      TEXT,
            outcome         TEXT,
            applied_status  VARCHAR(200),
            created_at      DOUBLE       NOT NULL,
            updated_at      DOUBLE       NOT NULL,
            UNIQUE KEY deliveries_event (event_id),
            -- Claims walk a store's pending deliveries oldest first.
            KEY deliveries_claim (state, store, id),
            -- Whether an earlier delivery of the same order is still pending.
            KEY deliveries_by_order (store, woo_order_id, state, id),
            KEY deliveries_due (state, next_attempt_at),
            CONSTRAINT deliveries_event_fk FOREIGN KEY (event_id) REFERENCES events (id),
            CONSTRAINT deliveries_state CHECK (state IN ('pending', 'done', 'skipped', 'dead')),
            CONSTRAINT deliveries_progress CHECK (progress IN ('new', 'acting'))
        ) {_TABLE_OPTIONS}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS applied_payments (
            store            VARCHAR(64)  NOT NULL,
            cryptum_order_id VARCHAR(200) NOT NULL,
            status           VARCHAR(200) NOT NULL,
            delivery_id      BIGINT       NOT NULL,
            applied_at       DOUBLE       NOT NULL,
            PRIMARY KEY (store, cryptum_order_id, status)
        ) {_TABLE_OPTIONS}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS delivery_runs (
            id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            delivery_id    BIGINT       NOT NULL,
            generation     INT          NOT NULL,
            state          VARCHAR(8)   NOT NULL,
            outcome        TEXT,
            last_error     TEXT,
            attempts       INT          NOT NULL,
            applied_status VARCHAR(200),
            started_at     DOUBLE       NOT NULL,
            finished_at    DOUBLE       NOT NULL,
            requeued_at    DOUBLE       NOT NULL,
            UNIQUE KEY delivery_runs_generation (delivery_id, generation),
            CONSTRAINT delivery_runs_delivery_fk FOREIGN KEY (delivery_id)
                REFERENCES deliveries (id)
        ) {_TABLE_OPTIONS}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS health_probe (
            id         INT    NOT NULL PRIMARY KEY,
            checked_at DOUBLE NOT NULL
        ) {_TABLE_OPTIONS}
        """,
        # Periodic work one node at a time (reconciliation, retention): the
        # node that holds a task's row until `held_until` runs it.
        f"""
        CREATE TABLE IF NOT EXISTS task_leases (
            task       VARCHAR(32)  NOT NULL PRIMARY KEY,
            holder     VARCHAR(200) NOT NULL,
            held_until DOUBLE       NOT NULL
        ) {_TABLE_OPTIONS}
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = f"""
    CREATE TABLE IF NOT EXISTS schema_version (
        id      INT NOT NULL PRIMARY KEY,
        version INT NOT NULL
    ) {_TABLE_OPTIONS}
"""
# How long a starting node waits for another node's migration.
MIGRATION_LOCK_SECONDS = 600


async def read_version(cursor: Cursor) -> int:
    """The schema version the database is at; 0 for an empty database."""
    await cursor.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'schema_version'"
    )
    (exists,) = await cursor.fetchone()
    if not exists:
        return 0
    await cursor.execute("SELECT version FROM schema_version WHERE id = 1")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


def check_version(version: int, *, migrate: bool) -> None:
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the database has schema version {version}, newer than this program's "
            f"{SCHEMA_VERSION}; upgrade cryptum-bridge"
        )
    if version < SCHEMA_VERSION and not migrate:
        raise StorageError(
            f"the database has schema version {version}, older than this program's "
            f"{SCHEMA_VERSION}; start the daemon (cryptum-bridge serve) to create or upgrade it"
        )


async def migrate(
    pool: MysqlPool, before_migrating: Callable[[int, int], None] | None = None
) -> None:
    """Bring the schema up to date, once however many nodes start together."""

    async def under_lock(cursor: Cursor) -> None:
        await cursor.execute(
            "SELECT GET_LOCK(concat('cryptum-bridge:migrate:', DATABASE()), %s)",
            (MIGRATION_LOCK_SECONDS,),
        )
        (locked,) = await cursor.fetchone()
        if locked != 1:
            raise StorageError("another node has been migrating the database for too long")
        try:
            version = await read_version(cursor)
            check_version(version, migrate=True)
            if 0 < version < SCHEMA_VERSION and before_migrating is not None:
                before_migrating(version, SCHEMA_VERSION)
            await cursor.execute(_VERSION_TABLE)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1]:
                    await cursor.execute(statement)
                await cursor.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, %s)"
                    " ON DUPLICATE KEY UPDATE version = VALUES(version)",
                    (number,),
                )
        finally:
            await cursor.execute(
                "SELECT RELEASE_LOCK(concat('cryptum-bridge:migrate:', DATABASE()))"
            )
            await cursor.fetchall()

    await pool.transaction(under_lock)
