-- Work analysis could not do (issue 18): a stored snapshot whose fold fails on its
-- data, or a boot whose re-judging fails, is set aside here with the error class
-- instead of being retried forever in front of every other device's data.
-- seq and captured_at are NULL for a boot set aside at the judging step.
CREATE TABLE analysis_quarantine (
    device_id      text NOT NULL,
    boot_id        text NOT NULL,
    seq            bigint,
    captured_at    timestamptz,
    stage          text NOT NULL,   -- 'fold' or 'judge'
    error          text NOT NULL,   -- exception class and SQLSTATE, never row values
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analysis_quarantine_device ON analysis_quarantine (device_id, boot_id);
