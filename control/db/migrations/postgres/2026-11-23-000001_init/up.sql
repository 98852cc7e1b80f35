-- The whole control-plane schema (PostgreSQL twin of ../../sqlite/2026-11-23-000001_init/up.sql).
-- IDs are UUID v7 strings; timestamps are UTC (TIMESTAMP); enums are snake_case TEXT.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    settings_json TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT NOT NULL,
    password_hash TEXT,
    role TEXT NOT NULL,
    display_name TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE role_permissions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    role TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (tenant_id, role, permission)
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, user_id);

CREATE TABLE persons (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    date_of_birth DATE,
    guardian_person_id TEXT,
    guardian_name TEXT,
    guardian_contact TEXT,
    never_publish BOOLEAN NOT NULL DEFAULT FALSE,
    custom_fields_json TEXT NOT NULL DEFAULT '{}',
    avatar_face_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX persons_tenant_name ON persons (tenant_id, name);
CREATE UNIQUE INDEX persons_tenant_pseudonym ON persons (tenant_id, pseudonym);

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    filename TEXT NOT NULL,
    mime TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    phash TEXT,
    width INTEGER,
    height INTEGER,
    blob_key TEXT NOT NULL,
    thumb_blob_key TEXT,
    legal_basis TEXT,
    legal_basis_note TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    current_version INTEGER NOT NULL DEFAULT 1,
    uploaded_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX assets_tenant_sha256 ON assets (tenant_id, sha256);
CREATE INDEX assets_tenant_created ON assets (tenant_id, created_at);

CREATE TABLE asset_versions (
    id TEXT PRIMARY KEY NOT NULL,
    asset_id TEXT NOT NULL REFERENCES assets(id),
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    version INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (asset_id, version)
);

CREATE TABLE faces (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    asset_id TEXT NOT NULL REFERENCES assets(id),
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    person_id TEXT,
    box_x1 DOUBLE PRECISION NOT NULL,
    box_y1 DOUBLE PRECISION NOT NULL,
    box_x2 DOUBLE PRECISION NOT NULL,
    box_y2 DOUBLE PRECISION NOT NULL,
    landmarks_json TEXT,
    score DOUBLE PRECISION,
    identifiable BOOLEAN NOT NULL DEFAULT TRUE,
    quality_json TEXT,
    candidates_json TEXT,
    model_version TEXT,
    template_enrolled BOOLEAN NOT NULL DEFAULT FALSE,
    decided_by TEXT,
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX faces_tenant_asset ON faces (tenant_id, asset_id);
CREATE INDEX faces_tenant_person ON faces (tenant_id, person_id);

CREATE TABLE face_rejections (
    face_id TEXT NOT NULL REFERENCES faces(id),
    person_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    rejected_by TEXT,
    rejected_at TIMESTAMP NOT NULL,
    PRIMARY KEY (face_id, person_id)
);

CREATE TABLE agreements (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    person_id TEXT NOT NULL REFERENCES persons(id),
    channels_json TEXT NOT NULL DEFAULT '[]',
    valid_from DATE NOT NULL,
    valid_until DATE,
    source TEXT NOT NULL,
    covers_face_matching BOOLEAN NOT NULL DEFAULT FALSE,
    signed_by_guardian BOOLEAN NOT NULL DEFAULT FALSE,
    text_sha256 TEXT,
    note TEXT,
    withdrawn_at TIMESTAMP,
    withdrawal_reason TEXT,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX agreements_tenant_person ON agreements (tenant_id, person_id);

CREATE TABLE agreement_documents (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    agreement_id TEXT NOT NULL REFERENCES agreements(id),
    filename TEXT NOT NULL,
    mime TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX agreement_documents_agreement ON agreement_documents (tenant_id, agreement_id);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after TIMESTAMP NOT NULL,
    locked_by TEXT,
    locked_at TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, run_after);

CREATE TABLE rematch_runs (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    filter_json TEXT NOT NULL DEFAULT '{}',
    dry_run BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL,
    total BIGINT NOT NULL DEFAULT 0,
    done BIGINT NOT NULL DEFAULT 0,
    changed BIGINT NOT NULL DEFAULT 0,
    cursor TEXT,
    model_version TEXT,
    started_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    report_json TEXT
);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    at TIMESTAMP NOT NULL,
    actor_user_id TEXT,
    actor_label TEXT NOT NULL,
    ip TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);

-- The head of the audit chain (one row): the last entry's seq and hash. Appends update it in the
-- same transaction, so a removed tail entry is detected too; the UPDATE also serialises appends.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
