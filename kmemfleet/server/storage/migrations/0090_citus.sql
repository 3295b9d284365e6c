-- Citus scale-out: distribute the per-device tables by device_id (all
-- colocated with `devices`) and replicate the small shared tables to every node
-- as reference tables. On plain PostgreSQL (no citus extension) this is a no-op,
-- so the same migrations run on one VM and on a Citus cluster.
--
-- The layout is derived from the catalog, not listed by hand, so tables added
-- by later migrations follow the same rule:
--   * a table with a device_id column      -> distributed by device_id,
--                                             colocated with devices
--   * any other table                      -> reference table
--   * schema_version                       -> stays a coordinator-local table
--   * partitions                           -> follow their partitioned parent
-- kmemfleet_citus_apply() is idempotent: after an upgrade whose migrations add
-- tables, it converts just those (run it on the coordinator, or let the
-- migration runner call it after the last migration).
-- A database that grows from one PostgreSQL into Citus is converted in place by
-- `CREATE EXTENSION citus; SELECT kmemfleet_citus_apply();` on the coordinator
-- (after adding the workers), see docs/deploy.md.
--
-- tests/deploy/test_citus_ready.py checks on plain PostgreSQL that every table
-- this plan distributes keeps device_id in each primary key and unique
-- constraint, and that no foreign key crosses devices (Citus's own rules).

CREATE OR REPLACE FUNCTION kmemfleet_citus_layout()
RETURNS TABLE (table_name text, kind text)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           CASE WHEN EXISTS (
                    SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'device_id'
                      AND a.attnum > 0 AND NOT a.attisdropped)
                THEN 'distributed' ELSE 'reference' END
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema()
      AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND c.relname <> 'schema_version'
    ORDER BY 2 DESC,                        -- reference tables first
             (c.relname <> 'devices'),      -- devices anchors the colocation group
             1
$$;

-- Returns how many tables it converted (0 on plain PostgreSQL, and 0 when run
-- again on a cluster where everything is already distributed).
CREATE OR REPLACE FUNCTION kmemfleet_citus_apply()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    done boolean;
    converted integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN 0;
    END IF;
    FOR t IN SELECT * FROM kmemfleet_citus_layout() LOOP
        -- Dynamic SQL throughout: pg_dist_partition and the Citus functions
        -- exist only with the extension.
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_dist_partition'
                ' WHERE logicalrelid = $1::regclass)'
            INTO done USING quote_ident(t.table_name);
        CONTINUE WHEN done;
        IF t.kind = 'reference' THEN
            EXECUTE 'SELECT create_reference_table($1::regclass)' USING quote_ident(t.table_name);
        ELSIF t.table_name = 'devices' THEN
            EXECUTE 'SELECT create_distributed_table($1::regclass, ''device_id'')'
                USING quote_ident(t.table_name);
        ELSE
            EXECUTE 'SELECT create_distributed_table($1::regclass, ''device_id'','
                    ' colocate_with => ''devices'')'
                USING quote_ident(t.table_name);
        END IF;
        converted := converted + 1;
        RAISE NOTICE 'kmemfleet: % is now a % table', t.table_name, t.kind;
    END LOOP;
    RETURN converted;
END
$$;

SELECT kmemfleet_citus_apply();
