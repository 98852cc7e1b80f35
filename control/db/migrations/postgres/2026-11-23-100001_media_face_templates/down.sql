DROP INDEX IF EXISTS jobs_tenant_kind;
DROP TABLE face_templates;
