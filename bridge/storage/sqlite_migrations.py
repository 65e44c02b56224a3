"""The database schema, as numbered migrations.

`PRAGMA user_version` holds the number of the last migration applied. A
migration is appended here, never edited once released. Migrations run with
foreign keys off, so one may rebuild a table others refer to.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: tuple[str, ...] = (
    # 1: events received and the delivery each one owes to WooCommerce.
    """
    CREATE TABLE events (
        id               INTEGER PRIMARY KEY,
        store            TEXT    NOT NULL,
        body_sha256      BLOB    NOT NULL,
        received_at      REAL    NOT NULL,
        source           TEXT    NOT NULL,
        signature_form   TEXT,
        request_id       TEXT,
        cryptum_order_id TEXT    NOT NULL,
        woo_order_id     TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        payload          BLOB    NOT NULL,
        -- When the payload was cut down to its non-personal fields (retention).
        redacted_at      REAL,
        UNIQUE (store, body_sha256)
    );
    CREATE INDEX events_by_order ON events (store, woo_order_id, id);
    CREATE INDEX events_by_payment ON events (store, cryptum_order_id, status);
    CREATE INDEX events_unredacted ON events (received_at) WHERE redacted_at IS NULL;

    CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        event_id        INTEGER NOT NULL UNIQUE REFERENCES events (id),
        store           TEXT    NOT NULL,
        woo_order_id    TEXT    NOT NULL,
        state           TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'done', 'skipped', 'dead')),
        -- 'acting' once a plan is fixed and its effects may have happened,
        -- so that a retry finishes that plan instead of deciding again.
        progress        TEXT    NOT NULL DEFAULT 'new'
                        CHECK (progress IN ('new', 'acting')),
        -- The plan (JSON): the PUT body, the note and what they are for.
        decision        TEXT,
        -- Bumped when an admin retries or replays, so the new run notes anew.
        generation      INTEGER NOT NULL DEFAULT 1,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL    NOT NULL,
        lease_until     REAL,
        -- max_age_hours counts from here: arrival, or the admin's retry.
        age_from        REAL    NOT NULL,
        last_error      TEXT,
        outcome         TEXT,
        created_at      REAL    NOT NULL,
        updated_at      REAL    NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
    CREATE INDEX deliveries_pending_by_order ON deliveries (store, woo_order_id, id)
        WHERE state = 'pending';
    -- Claims walk a store's pending deliveries oldest first and stop at the limit.
    CREATE INDEX deliveries_pending ON deliveries (store, id) WHERE state = 'pending';

    -- Every event owes exactly one delivery, created by the statement that
    -- stores the event, so no code path can store one without the other.
    CREATE TRIGGER events_owe_a_delivery AFTER INSERT ON events
    BEGIN
        INSERT INTO deliveries (event_id, store, woo_order_id, next_attempt_at, age_from,
                                created_at, updated_at)
        VALUES (NEW.id, NEW.store, NEW.woo_order_id, NEW.received_at, NEW.received_at,
                NEW.received_at, NEW.received_at);
    END;

    -- One row rewritten by the readiness probe, to prove a commit still works.
    CREATE TABLE health_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at REAL    NOT NULL
    );
    """,
    # 2: one index on random keys instead of two. Every stored callback
    # updated both the dedupe key (store, body hash) and events_by_payment
    # (store, Cryptum order, status), each at a random place: with a million
    # events that is two pages written to the WAL per callback. The order and
    # status come from the body, so one unique key over all four columns
    # dedupes exactly as before and serves the payment lookups by its prefix.
    # SQLite cannot drop a UNIQUE constraint: the table is rebuilt.
    """
    CREATE TABLE events_rebuilt (
        id               INTEGER PRIMARY KEY,
        store            TEXT    NOT NULL,
        body_sha256      BLOB    NOT NULL,
        received_at      REAL    NOT NULL,
        source           TEXT    NOT NULL,
        signature_form   TEXT,
        request_id       TEXT,
        cryptum_order_id TEXT    NOT NULL,
        woo_order_id     TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        payload          BLOB    NOT NULL,
        redacted_at      REAL,
        UNIQUE (store, cryptum_order_id, status, body_sha256)
    );
    INSERT INTO events_rebuilt SELECT * FROM events ORDER BY id;
    DROP TABLE events;
    ALTER TABLE events_rebuilt RENAME TO events;
    CREATE INDEX events_by_order ON events (store, woo_order_id, id);
    CREATE INDEX events_unredacted ON events (received_at) WHERE redacted_at IS NULL;
    CREATE TRIGGER events_owe_a_delivery AFTER INSERT ON events
    BEGIN
        INSERT INTO deliveries (event_id, store, woo_order_id, next_attempt_at, age_from,
                                created_at, updated_at)
        VALUES (NEW.id, NEW.store, NEW.woo_order_id, NEW.received_at, NEW.received_at,
                NEW.received_at, NEW.received_at);
    END;
    """,
    # 3: what was applied, not what was seen. A delivery records the Cryptum
    # status it acted on (the API's, which may differ from its callback's) in
    # `applied_status`, and a trigger keeps one row per (store, Cryptum order,
    # status) in `applied_payments`, in the statement that finishes the
    # delivery. Later events reporting a status already applied change
    # nothing; reconciliation enqueues what was never applied.
    """
    ALTER TABLE deliveries ADD COLUMN applied_status TEXT;
    CREATE TABLE applied_payments (
        store            TEXT    NOT NULL,
        cryptum_order_id TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        delivery_id      INTEGER NOT NULL,
        applied_at       REAL    NOT NULL,
        PRIMARY KEY (store, cryptum_order_id, status)
    ) WITHOUT ROWID;
    CREATE TRIGGER deliveries_record_applied AFTER UPDATE OF applied_status ON deliveries
    WHEN NEW.applied_status IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO applied_payments
            (store, cryptum_order_id, status, delivery_id, applied_at)
        SELECT NEW.store, e.cryptum_order_id, NEW.applied_status, NEW.id, NEW.updated_at
        FROM events AS e WHERE e.id = NEW.event_id;
    END;
    -- Deliveries finished before this schema acted on their event's status.
    INSERT OR IGNORE INTO applied_payments
        (store, cryptum_order_id, status, delivery_id, applied_at)
    SELECT d.store, e.cryptum_order_id, e.status, d.id, d.updated_at
    FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
    WHERE d.state = 'done';
    """,
    # 4: a run's history outlives its replay. `replay`, `dead-letter retry` and
    # reconciliation start a delivery again by bumping its generation; the
    # trigger copies the run that ended (state, outcome, attempts) into
    # `delivery_runs` in that same statement, so a finished outcome is never
    # overwritten, whatever code path requeues it.
    """
    CREATE TABLE delivery_runs (
        id             INTEGER PRIMARY KEY,
        delivery_id    INTEGER NOT NULL REFERENCES deliveries (id),
        generation     INTEGER NOT NULL,
        state          TEXT    NOT NULL,
        outcome        TEXT,
        last_error     TEXT,
        attempts       INTEGER NOT NULL,
        applied_status TEXT,
        -- The run's age counted from here (arrival, or the requeue that began it).
        started_at     REAL    NOT NULL,
        finished_at    REAL    NOT NULL,
        requeued_at    REAL    NOT NULL,
        UNIQUE (delivery_id, generation)
    );
    CREATE TRIGGER deliveries_keep_finished_runs AFTER UPDATE OF generation ON deliveries
    WHEN NEW.generation > OLD.generation AND OLD.state != 'pending'
    BEGIN
        INSERT OR IGNORE INTO delivery_runs
            (delivery_id, generation, state, outcome, last_error, attempts, applied_status,
             started_at, finished_at, requeued_at)
        VALUES (OLD.id, OLD.generation, OLD.state, OLD.outcome, OLD.last_error, OLD.attempts,
                OLD.applied_status, OLD.age_from, OLD.updated_at, NEW.updated_at);
    END;
    """,
    # 5: what a delivery needs of its event, taken from the callback once on
    # arrival (`EventFacts`, sealed like the payload), so no attempt parses
    # the stored body again. Events stored before have none: their delivery
    # reads the payload, as before.
    """
    ALTER TABLE events ADD COLUMN facts BLOB;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
