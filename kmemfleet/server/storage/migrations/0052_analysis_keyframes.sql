-- Keyframes (snapshots.base_seq = 0) folded into the analysis: a keyframe is the
-- full state, so a key held before it and absent from it went to 0 at it. The
-- previous keyframe of a boot bounds which bucket rows the next one must look at
-- (a key present in a keyframe has a row in that keyframe's bucket).
CREATE TABLE analysis_keyframes (
    device_id   text NOT NULL,
    boot_id     text NOT NULL,
    captured_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, boot_id, captured_at)
);
