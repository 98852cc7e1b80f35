-- Digital signing (issue 13): consent templates and their versions, signing requests, one-time
-- codes, sealed evidence, the signing keys' public halves, the outbox of e-mails and SMS, and
-- the domain events the CMS integration delivers. Twin of ../../postgres/2026-12-05-000003_digital_signing.

-- A tenant's agreement template; its content lives in versions.
CREATE TABLE consent_templates (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    archived_at TIMESTAMP,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX consent_templates_tenant_name ON consent_templates (tenant_id, name);

-- One version of a template. Immutable once first sent (first_sent_at set): editing then makes
-- the next version. text_sha256 is the sha256 of the exact text the signer is shown.
CREATE TABLE consent_template_versions (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    template_id TEXT NOT NULL REFERENCES consent_templates(id),
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    body_markdown TEXT NOT NULL,
    language TEXT NOT NULL,
    scopes_json TEXT NOT NULL,
    face_matching_text TEXT,
    validity_days INTEGER,
    legal_character TEXT NOT NULL,
    after_signing_text TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    first_sent_at TIMESTAMP,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (template_id, version)
);
CREATE INDEX consent_template_versions_tenant ON consent_template_versions (tenant_id, template_id, version);

-- A request to a person to sign a template version, by a link sent by e-mail or SMS.
CREATE TABLE signing_requests (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    person_id TEXT NOT NULL REFERENCES persons(id),
    template_version_id TEXT NOT NULL REFERENCES consent_template_versions(id),
    purpose TEXT NOT NULL,
    renews_agreement_id TEXT,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    destination_sha256 TEXT NOT NULL,
    language TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    asset_ids_json TEXT NOT NULL DEFAULT '[]',
    valid_until DATE,
    status TEXT NOT NULL,
    pending_json TEXT,
    expires_at TIMESTAMP NOT NULL,
    opened_at TIMESTAMP,
    signed_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by TEXT,
    revoke_reason TEXT,
    locked_at TIMESTAMP,
    agreement_id TEXT,
    evidence_id TEXT,
    ip TEXT,
    user_agent TEXT,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX signing_requests_tenant_status ON signing_requests (tenant_id, status, created_at);
CREATE INDEX signing_requests_tenant_person ON signing_requests (tenant_id, person_id, created_at);

-- A one-time code sent for a signing request (purpose sign or guardian) or for a withdrawal
-- through a receipt (purpose withdraw). Only the code's keyed hash is kept.
CREATE TABLE otp_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    request_id TEXT,
    evidence_id TEXT,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination_sha256 TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    sends INTEGER NOT NULL DEFAULT 1,
    first_sent_at TIMESTAMP NOT NULL,
    last_sent_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    verified_at TIMESTAMP,
    locked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX otp_challenges_request ON otp_challenges (tenant_id, request_id, purpose);
CREATE INDEX otp_challenges_evidence ON otp_challenges (tenant_id, evidence_id, purpose);
CREATE INDEX otp_challenges_destination ON otp_challenges (destination_sha256, last_sent_at);

-- Sealed evidence: canonical JSON records (a signature or a withdrawal), each with its sha256,
-- chained per tenant (the record holds its seq and the previous record's sha256) and signed
-- with Ed25519. receipt_token_sha256 is the hash of the receipt link's token.
CREATE TABLE consent_evidence (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    agreement_id TEXT NOT NULL,
    request_id TEXT,
    record_json TEXT NOT NULL,
    record_sha256 TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    receipt_token_sha256 TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX consent_evidence_agreement ON consent_evidence (tenant_id, agreement_id);

-- The public halves of every key that ever sealed evidence (served for offline verification).
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    first_used_at TIMESTAMP NOT NULL
);

-- E-mails and SMS, written in the transaction of the change that causes them and delivered by
-- the job system (retries with backoff, then dead). id is the message id (idempotency).
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    subject TEXT,
    body_text TEXT NOT NULL,
    body_html TEXT,
    purpose TEXT NOT NULL,
    related_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status, created_at);
CREATE INDEX outbox_tenant_related ON outbox (tenant_id, related_id);

-- Domain events (e.g. consent.withdrawn, asset.compliance_changed), recorded in the
-- transaction of the change, for the CMS integration to deliver.
CREATE TABLE domain_events (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX domain_events_tenant_created ON domain_events (tenant_id, created_at, id);
