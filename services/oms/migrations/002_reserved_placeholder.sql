-- Placeholder keeping migration versions gap-free on the admin branch: version 002 belongs to another branch.
-- DELETE THIS FILE AT MERGE (the other branch's 002_*.sql takes its place).
SELECT 1;
