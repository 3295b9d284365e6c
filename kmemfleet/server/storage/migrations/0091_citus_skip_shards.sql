-- Citus (issue 16): kmemfleet_citus_apply() must not take a shard for a table.
-- On a coordinator that holds reference-table placements (citus_set_coordinator_host,
-- or a single-node Citus) the shards of the reference tables (stacks_102008, ...)
-- are ordinary tables in pg_class, visible to a function's queries although hidden
-- from clients; the first pass (0090) converted the tables, the runner's second
-- call then met `analysis_cohorts_102008`, tried to make it a reference table and
-- failed: `relation "analysis_cohorts_102008" is a shard relation`, so a server
-- against a Citus coordinator never started. Same function, shards skipped; a
-- no-op on plain PostgreSQL as before.

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
                ' OR pg_catalog.relation_is_a_known_shard($1::regclass)'
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
