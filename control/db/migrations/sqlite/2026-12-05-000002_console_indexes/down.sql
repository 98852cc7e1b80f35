DROP INDEX IF EXISTS assets_tenant_size;
DROP INDEX IF EXISTS assets_tenant_filename;
DROP INDEX IF EXISTS audit_log_tenant_object;
DROP INDEX IF EXISTS jobs_tenant_status_updated;
DROP INDEX IF EXISTS agreements_tenant_until;
DROP INDEX IF EXISTS faces_tenant_status_created;
