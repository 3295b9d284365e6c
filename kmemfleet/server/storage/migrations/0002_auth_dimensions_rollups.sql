-- kmemfleet schema v2: credentials, dimension tables, hourly rollups.
--
-- Citus: credentials, revoked_devices, firmware_versions and slab_cache_names
-- are small reference tables; the hourly rollups are time-series tables
-- distributable by device_id (device_id leads every primary key) and
-- range-partitioned by hour in daily partitions like the raw tables.

-- Bearer tokens, stored as sha256 of the token: a database leak does not leak
-- credentials. kind 'device' may write snapshots whose device_id = subject;
-- kind 'reader' may call the Query service.
CREATE TABLE credentials (
    token_hash bytea PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('device', 'reader')),
    subject    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX credentials_subject ON credentials (kind, subject);

-- Devices refused even with a valid mTLS certificate (a CA cannot un-sign).
CREATE TABLE revoked_devices (
    device_id  text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE firmware_versions (
    firmware_version text PRIMARY KEY,
    first_seen       timestamptz NOT NULL
);

CREATE TABLE slab_cache_names (
    name       text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now()
);

-- Hourly rollups: the last value of each key within the hour plus its range,
-- kept far longer than the raw rows (default 180 days vs 14).
CREATE TABLE stack_samples_hourly (
    device_id    text NOT NULL,
    boot_id      text NOT NULL,
    stack_id     bigint NOT NULL,
    hour         timestamptz NOT NULL,
    samples      integer NOT NULL,
    removed      boolean NOT NULL,
    last_bytes   bigint NOT NULL,
    min_bytes    bigint NOT NULL,
    max_bytes    bigint NOT NULL,
    last_objects bigint NOT NULL,
    PRIMARY KEY (device_id, boot_id, stack_id, hour)
) PARTITION BY RANGE (hour);

CREATE TABLE slab_samples_hourly (
    device_id    text NOT NULL,
    boot_id      text NOT NULL,
    name         text NOT NULL,
    occurrence   integer NOT NULL,
    hour         timestamptz NOT NULL,
    samples      integer NOT NULL,
    removed      boolean NOT NULL,
    objsize      bigint NOT NULL,
    last_active_objs bigint NOT NULL,
    last_num_objs    bigint NOT NULL,
    max_num_objs     bigint NOT NULL,
    PRIMARY KEY (device_id, boot_id, name, occurrence, hour)
) PARTITION BY RANGE (hour);

