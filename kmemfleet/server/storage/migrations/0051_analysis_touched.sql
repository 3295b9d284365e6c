-- Boots whose series must be re-judged: marked in the fold transaction, consumed
-- once per catch-up (not once per batch), so a backlog re-judges each boot once.
CREATE TABLE analysis_touched (
    device_id text NOT NULL,
    boot_id   text NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);
