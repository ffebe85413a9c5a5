-- Placeholder on the `standby` branch only, so that 003_leadership.sql has no gap in the version
-- sequence. The real 002_order_path.sql comes from the `omscore` branch: at merge, take theirs.
SELECT 1;
