"""The schema is ready for Citus, proven on plain PostgreSQL (Citus is not in Debian).

All migrations are applied to a real PostgreSQL; then the catalog is checked
against the rules Citus enforces when create_distributed_table runs:
- a distributed table's primary key and every unique constraint/index contain
  the distribution column (device_id);
- colocated tables share the distribution column's type;
- a foreign key between distributed tables includes the distribution column on
  both sides, and a reference table never points at a distributed one;
- no triggers on distributed tables (Citus refuses them by default).
The Citus migration itself must be a no-op here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from kmemfleet.server.storage.migrate import available, migrate

# Tables whose classification is part of the documented Citus set-up
# (docs/deploy.md); tables added later follow the same rule automatically.
DISTRIBUTED = {
    "devices", "boots", "snapshots", "slab_samples", "stack_samples", "analysis_queue",
    "revoked_devices",
}  # fmt: skip
REFERENCE = {
    "stacks", "credentials", "firmware_versions", "slab_cache_names", "analysis_summary",
    "analysis_curves", "analysis_curves_dirty", "fleet_slab_buckets",
}  # fmt: skip


@pytest.fixture
async def conn(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(database_dsn)
    try:
        await migrate(c)
        yield c
    finally:
        await c.close()


async def layout(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT table_name, kind FROM kmemfleet_citus_layout()")
    return {r["table_name"]: r["kind"] for r in rows}


async def test_citus_migration_is_a_no_op_on_plain_postgresql(conn: asyncpg.Connection) -> None:
    assert 90 in {m.version for m in available()}
    assert await conn.fetchval("SELECT 90 IN (SELECT version FROM schema_version)")
    assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension "
                                   "WHERE extname = 'citus')")  # fmt: skip
    assert await conn.fetchval("SELECT kmemfleet_citus_apply()") == 0
    # Nothing was converted: the tables are still ordinary tables.
    assert await conn.fetchval("SELECT to_regclass('pg_dist_partition')") is None


async def test_per_device_tables_are_distributed_and_shared_ones_are_reference(
    conn: asyncpg.Connection,
) -> None:
    plan = await layout(conn)
    assert {t for t in DISTRIBUTED if plan.get(t) == "distributed"} == DISTRIBUTED
    assert {t for t in REFERENCE if plan.get(t) == "reference"} == REFERENCE
    assert "schema_version" not in plan
    # Partitions follow their parent; devices anchors the colocation group.
    parts = await conn.fetch("SELECT relname FROM pg_class WHERE relispartition")
    assert not {p["relname"] for p in parts} & set(plan)
    order = [r["table_name"] for r in await conn.fetch("SELECT * FROM kmemfleet_citus_layout()")]
    distributed = [t for t in order if plan[t] == "distributed"]
    assert distributed[0] == "devices"
    assert all(plan[t] == "reference" for t in order[: len(order) - len(distributed)])


async def test_every_time_series_table_is_distributed_by_device(
    conn: asyncpg.Connection,
) -> None:
    plan = await layout(conn)
    partitioned = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'p' AND NOT c.relispartition"
    )
    assert partitioned, "expected range-partitioned time-series tables"
    for row in partitioned:
        assert plan[row["relname"]] == "distributed", (
            f"time-series table {row['relname']} has no device_id: it would become a "
            "reference table copied to every Citus node"
        )


async def test_every_unique_key_of_a_distributed_table_contains_device_id(
    conn: asyncpg.Connection,
) -> None:
    plan = await layout(conn)
    rows = await conn.fetch(
        """
        SELECT t.relname AS tbl, i.relname AS idx, x.indisprimary AS primary_key,
               EXISTS (SELECT 1 FROM unnest(x.indkey) k
                       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k
                       WHERE a.attname = 'device_id') AS has_device_id
        FROM pg_index x
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = current_schema() AND x.indisunique AND NOT t.relispartition
        """
    )
    # Raw sample tables may have no unique key at all (dedupe is on snapshots);
    # the ones that have keys are checked.
    checked = {r["tbl"] for r in rows if plan.get(r["tbl"]) == "distributed"}
    assert {"devices", "boots", "snapshots", "analysis_queue"} <= checked
    bad = [
        f"{r['tbl']}.{r['idx']}"
        for r in rows
        if plan.get(r["tbl"]) == "distributed" and not r["has_device_id"]
    ]
    assert not bad, f"unique keys without device_id (Citus refuses them): {bad}"
    exclusion = await conn.fetch(
        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = current_schema() AND c.contype = 'x'"
    )
    assert not exclusion


async def test_colocated_tables_share_the_device_id_type(conn: asyncpg.Connection) -> None:
    plan = await layout(conn)
    types = await conn.fetch(
        """
        SELECT c.relname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND a.attname = 'device_id'
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        """
    )
    distributed = [r for r in types if plan.get(r["relname"]) == "distributed"]
    assert {r["type"] for r in distributed} == {"text"}
    assert all(r["attnotnull"] for r in distributed)


async def test_no_foreign_key_crosses_devices(conn: asyncpg.Connection) -> None:
    plan = await layout(conn)
    fks = await conn.fetch(
        """
        SELECT c.conname, src.relname AS src, dst.relname AS dst,
               (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey)
                    WITH ORDINALITY k(num, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num) AS src_cols,
               (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey)
                    WITH ORDINALITY k(num, ord)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num) AS dst_cols
        FROM pg_constraint c
        JOIN pg_class src ON src.oid = c.conrelid
        JOIN pg_class dst ON dst.oid = c.confrelid
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = current_schema() AND c.contype = 'f' AND NOT src.relispartition
        """
    )
    bad = []
    for fk in fks:
        src, dst = plan.get(fk["src"]), plan.get(fk["dst"])
        if dst == "distributed":
            pairs = list(zip(fk["src_cols"], fk["dst_cols"], strict=True))
            if src != "distributed" or ("device_id", "device_id") not in pairs:
                bad.append(f"{fk['conname']}: {fk['src']} -> {fk['dst']}")
    assert not bad, f"foreign keys that would cross devices (shards): {bad}"


async def test_distributed_tables_have_no_triggers(conn: asyncpg.Connection) -> None:
    plan = await layout(conn)
    rows = await conn.fetch(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
    )
    bad = [f"{r['relname']}.{r['tgname']}" for r in rows if plan.get(r["relname"]) == "distributed"]
    assert not bad, f"Citus refuses triggers on distributed tables by default: {bad}"


async def test_on_citus_device_tables_are_colocated_and_the_others_reference(
    citus_dsn: str,
) -> None:
    """On a real cluster (issue 16): what 0090/0091 made of each table, and that a
    second apply (as after an upgrade) converts nothing."""
    c = await asyncpg.connect(citus_dsn)
    try:
        await migrate(c)
        kinds = {
            r["t"]: (r["partmethod"], r["colocationid"])
            for r in await c.fetch(
                "SELECT logicalrelid::text AS t, partmethod::text, colocationid"
                " FROM pg_dist_partition"
            )
        }
        layout = {r["table_name"]: r["kind"] for r in await c.fetch(
            "WITH l AS MATERIALIZED (SELECT * FROM kmemfleet_citus_layout())"
            " SELECT * FROM l WHERE NOT relation_is_a_known_shard(table_name::regclass)"
        )}  # fmt: skip
        distributed = {t for t, k in layout.items() if k == "distributed"}
        reference = {t for t, k in layout.items() if k == "reference"}
        assert distributed >= DISTRIBUTED and reference >= REFERENCE
        devices_group = kinds["devices"][1]
        for t in distributed:
            assert kinds[t] == ("h", devices_group), t  # hash by device_id, colocated
            column = await c.fetchval(
                "SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition "
                "WHERE logicalrelid = $1::regclass",
                t,
            )
            assert column == "device_id", t
        for t in reference:
            assert kinds[t][0] == "n", t
        assert "schema_version" not in kinds
        assert await c.fetchval("SELECT kmemfleet_citus_apply()") == 0
    finally:
        await c.close()
