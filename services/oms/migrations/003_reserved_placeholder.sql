-- Placeholder keeping migration versions gap-free on the admin branch: version 003 belongs to another branch.
-- DELETE THIS FILE AT MERGE (the other branch's 003_*.sql takes its place).
SELECT 1;
