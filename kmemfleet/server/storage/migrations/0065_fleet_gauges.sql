-- The fleet gauges (kmemfleet/server/fleet_metrics.py, docs/alerts.md) count the
-- devices on which a firmware's signatures leak, every interval: only the
-- leaking series, a small share of analysis_series, need to be read for that.
CREATE INDEX IF NOT EXISTS analysis_series_leaking
    ON analysis_series (firmware_version, subject, signature, device_id) WHERE leaking;
-- Devices that reported recently, per firmware.
CREATE INDEX IF NOT EXISTS devices_last_seen ON devices (last_seen);
