-- Twin of ../../postgres/2026-12-05-000010_rights.
-- Data-subject rights (issue 15): crypto-shredded personal fields, erasure runs, access exports.

-- A person's personal fields (name, e-mail, phone, date of birth, guardian, custom fields) are
-- sealed under a key of that person (kept in the blob store's keyring, wrapped by the tenant's
-- key, never in the database): `sealed` is that ciphertext; the plain columns hold '' / NULL.
-- Destroying the key makes every copy of `sealed` (backups, WAL) unreadable.
ALTER TABLE persons ADD COLUMN sealed TEXT;
-- Keyed hashes (HMAC-SHA256 under a per-tenant index key) of the normalised e-mail and phone,
-- so that a person can still be looked up by them.
ALTER TABLE persons ADD COLUMN email_index TEXT;
ALTER TABLE persons ADD COLUMN phone_index TEXT;
-- When the erasure completed (the row stays as a pseudonymous tombstone).
ALTER TABLE persons ADD COLUMN erased_at TIMESTAMP;
CREATE INDEX persons_email_index ON persons (tenant_id, email_index);
CREATE INDEX persons_phone_index ON persons (tenant_id, phone_index);

-- A message about a person (signing links, codes, receipts) is sealed under their key.
ALTER TABLE outbox ADD COLUMN person_id TEXT;
CREATE INDEX outbox_person ON outbox (tenant_id, person_id);

-- Retention: when the scheduler deleted an ended agreement's documents, and its evidence.
ALTER TABLE agreements ADD COLUMN documents_deleted_at TIMESTAMP;
ALTER TABLE consent_evidence ADD COLUMN expires_on DATE;

-- One erasure of a person: a resumable run of idempotent steps.
CREATE TABLE erasure_runs (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    person_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    -- running | waiting (a step waits for the matcher) | done | failed
    status TEXT NOT NULL,
    -- the next step to run
    step TEXT NOT NULL,
    -- the decision for each file, fixed when the run starts
    plan_json TEXT NOT NULL,
    -- what each step did
    report_json TEXT NOT NULL,
    requested_by TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE UNIQUE INDEX erasure_runs_person ON erasure_runs (tenant_id, person_id);

-- Access-request exports (Art. 15, 20): a package built by a job, downloadable until it expires.
CREATE TABLE access_exports (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    person_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    -- queued | running | ready | failed | expired
    status TEXT NOT NULL,
    done BIGINT NOT NULL,
    total BIGINT NOT NULL,
    blob_key TEXT,
    size_bytes BIGINT,
    sha256 TEXT,
    expires_at TIMESTAMP,
    downloads INTEGER NOT NULL,
    requested_by TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX access_exports_person ON access_exports (tenant_id, person_id);
CREATE INDEX access_exports_expiry ON access_exports (expires_at);
