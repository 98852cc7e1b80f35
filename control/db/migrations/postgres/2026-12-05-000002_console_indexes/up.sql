-- The console's lists: faces waiting for review (newest first), consents ending soon, failing
-- jobs, a file's audit trail.
CREATE INDEX faces_tenant_status_created ON faces (tenant_id, status, created_at, id);
CREATE INDEX agreements_tenant_until ON agreements (tenant_id, valid_until);
CREATE INDEX jobs_tenant_status_updated ON jobs (tenant_id, status, updated_at);
CREATE INDEX audit_log_tenant_object ON audit_log (tenant_id, object_type, object_id, seq);
-- The console's files list sorted by name or size, paged by keyset.
CREATE INDEX assets_tenant_filename ON assets (tenant_id, filename, id);
CREATE INDEX assets_tenant_size ON assets (tenant_id, size_bytes, id);
