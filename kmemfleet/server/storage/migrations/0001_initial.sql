-- kmemfleet schema v1: devices, boots, snapshots and the time series of slab
-- caches and stacks.
--
-- Citus-ready by construction: every per-device table carries device_id in its
-- primary key (so it can be distributed by device_id and colocated); `stacks`
-- is a small dimension table (a reference table under Citus); no foreign key
-- crosses devices. Time-series tables are range-partitioned by capture time in
-- daily partitions that kmemfleet creates ahead and drops for retention.
-- Rows store what the agent sent: a keyframe stores every key, a delta only the
-- changed ones plus tombstones (removed = true); the full state at any time is
-- the newest row per key at or before it within the boot.

CREATE TABLE devices (
    device_id        text PRIMARY KEY,
    firmware_version text NOT NULL,
    kernel_release   text NOT NULL DEFAULT '',
    arch             text NOT NULL DEFAULT '',
    hardware_model   text NOT NULL DEFAULT '',
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_boot_id     text NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    snapshots        bigint NOT NULL DEFAULT 0
);
CREATE INDEX devices_firmware ON devices (firmware_version);

-- One row per (device, boot): kernel memory is judged per boot.
CREATE TABLE boots (
    device_id        text NOT NULL,
    boot_id          text NOT NULL,
    firmware_version text NOT NULL,
    kernel_release   text NOT NULL DEFAULT '',
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    mem_total        bigint,
    low_free         bigint,
    PRIMARY KEY (device_id, boot_id)
);
CREATE INDEX boots_firmware ON boots (firmware_version);

-- One row per stored snapshot. (device_id, boot_id, seq, captured_at) is the
-- dedupe key: a retried snapshot carries the same capture time, so it collides.
CREATE TABLE snapshots (
    device_id        text NOT NULL,
    boot_id          text NOT NULL,
    seq              bigint NOT NULL,
    captured_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    uptime_seconds   double precision NOT NULL,
    base_seq         bigint NOT NULL,
    firmware_version text NOT NULL,
    meminfo          jsonb NOT NULL DEFAULT '{}'::jsonb,
    buddyinfo        jsonb NOT NULL DEFAULT '[]'::jsonb,
    stack_source     jsonb,
    parse_issues     jsonb NOT NULL DEFAULT '[]'::jsonb,
    spool_dropped    bigint NOT NULL DEFAULT 0,
    slab_rows        integer NOT NULL,
    stack_rows       integer NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq, captured_at)
) PARTITION BY RANGE (captured_at);

-- Interned stacks, shared by every device: a reference table under Citus.
CREATE TABLE stacks (
    stack_id   bigint PRIMARY KEY,  -- the agent's 64-bit id, as a signed integer
    source     smallint NOT NULL,
    module     text NOT NULL DEFAULT '',
    frames     jsonb NOT NULL,      -- [{function, offset, length, module, address, file, line}]
    signature  text NOT NULL,       -- functions + modules, offsets ignored
    first_seen timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stacks_signature ON stacks (signature);

CREATE TABLE slab_samples (
    device_id    text NOT NULL,
    boot_id      text NOT NULL,
    seq          bigint NOT NULL,
    captured_at  timestamptz NOT NULL,
    name         text NOT NULL,
    occurrence   integer NOT NULL,
    removed      boolean NOT NULL,
    active_objs  bigint NOT NULL,
    num_objs     bigint NOT NULL,
    objsize      bigint NOT NULL,
    objperslab   bigint NOT NULL,
    pagesperslab bigint NOT NULL,
    lim          bigint NOT NULL,
    batchcount   bigint NOT NULL,
    sharedfactor bigint NOT NULL,
    active_slabs bigint NOT NULL,
    num_slabs    bigint NOT NULL,
    sharedavail  bigint NOT NULL
) PARTITION BY RANGE (captured_at);
CREATE INDEX slab_samples_device ON slab_samples (device_id, boot_id, captured_at);

CREATE TABLE stack_samples (
    device_id   text NOT NULL,
    boot_id     text NOT NULL,
    seq         bigint NOT NULL,
    captured_at timestamptz NOT NULL,
    stack_id    bigint NOT NULL,
    removed     boolean NOT NULL,
    bytes       bigint NOT NULL,
    objects     bigint NOT NULL,
    allocs      bigint NOT NULL,
    frees       bigint NOT NULL,
    bytes_upper bigint NOT NULL
) PARTITION BY RANGE (captured_at);
CREATE INDEX stack_samples_device ON stack_samples (device_id, boot_id, stack_id, captured_at);

-- Snapshots stored but not yet folded into the analysis tables. The writer adds
-- a row in the snapshot's own transaction; the analysis, the only taker under
-- its advisory lock, consumes and deletes rows, so nothing committed is missed.
CREATE TABLE analysis_queue (
    device_id   text NOT NULL,
    boot_id     text NOT NULL,
    seq         bigint NOT NULL,
    captured_at timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (device_id, boot_id, seq, captured_at)
);
