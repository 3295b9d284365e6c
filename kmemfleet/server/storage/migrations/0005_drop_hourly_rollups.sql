-- Retire the hourly rollups (issue 13): maintenance re-aggregated 48 h of raw
-- samples into them every run and nothing in kmemfleet read them (the analysis
-- keeps its own buckets). A storage slot (0001-0049): it runs after 0060 where
-- that is. An empty table goes; one holding history (up to the old rollup
-- retention, older than any raw sample) is kept, renamed *_retired and no
-- longer written, for whoever reads it with SQL: drop it when done
-- (docs/deploy.md).
DO $$
DECLARE
    t text;
    has_rows boolean;
BEGIN
    FOREACH t IN ARRAY ARRAY['stack_samples_hourly', 'slab_samples_hourly'] LOOP
        IF to_regclass(t) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', t) INTO has_rows;
        IF has_rows THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_retired');
        ELSE
            EXECUTE format('DROP TABLE %I', t);
        END IF;
    END LOOP;
END $$;
