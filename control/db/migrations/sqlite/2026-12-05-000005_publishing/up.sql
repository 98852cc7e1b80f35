-- Twin of ../../postgres/2026-12-05-000005_publishing.
-- Publishing (issue 14): where files are used, who is told when that changes, what is served.

-- The materialised compliance of every file per channel today: the allowed set that the
-- delivery endpoint and share links keep in memory, and the state that `asset.hidden` /
-- `asset.allowed` / `asset.expiring` events are the changes of.
CREATE TABLE asset_exposure (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    asset_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    allowed BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    allowed_until DATE,
    reasons_json TEXT NOT NULL,
    -- the `allowed_until` whose `asset.expiring` notice was sent (none yet: NULL)
    expiring_announced_until DATE,
    -- the first day on which the verdict may change without any write (a consent starting or
    -- ending, a notice period beginning, a minor coming of age); NULL: never
    next_check_on DATE,
    asset_version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, asset_id, channel)
);
CREATE INDEX asset_exposure_next_check ON asset_exposure (next_check_on);

-- Publications: where a CMS placed a file, and when it removed it.
CREATE TABLE publications (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    asset_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    location TEXT NOT NULL,
    placed_at TIMESTAMP NOT NULL,
    placed_by TEXT NOT NULL,
    removed_at TIMESTAMP,
    removed_by TEXT,
    recorded_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX publications_asset ON publications (tenant_id, asset_id, placed_at);
CREATE INDEX publications_tenant_placed ON publications (tenant_id, placed_at);

-- Webhook endpoints of a tenant (Standard Webhooks).
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    event_types TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

-- Webhook attempts: one row per HTTP request made for a delivery.
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    delivery_seq BIGINT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error TEXT,
    response_excerpt TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq, attempted_at);

-- Share links and media portals: one file or a collection.
CREATE TABLE share_links (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    token_hash TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    channel TEXT NOT NULL,
    expires_on DATE NOT NULL,
    password_hash TEXT,
    allow_download BOOLEAN NOT NULL,
    watermark_text TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_by TEXT
);
CREATE INDEX share_links_tenant ON share_links (tenant_id, created_at);
CREATE TABLE share_link_assets (
    share_id TEXT NOT NULL REFERENCES share_links(id),
    asset_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (share_id, asset_id)
);
CREATE TABLE share_access_log (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    share_id TEXT NOT NULL,
    asset_id TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    at TIMESTAMP NOT NULL
);
CREATE INDEX share_access_log_share ON share_access_log (share_id, at);

-- Renditions of a file version (size, format, watermark), generated once, kept as blobs.
CREATE TABLE renditions (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    asset_id TEXT NOT NULL,
    asset_version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    mime TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    etag TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, asset_id, asset_version, spec)
);

-- The daily digest of expiring consents: who got it on which day; who does not want it.
CREATE TABLE digest_runs (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    day DATE NOT NULL,
    message_id TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, user_id, day)
);
ALTER TABLE users ADD COLUMN digest_opt_out BOOLEAN NOT NULL DEFAULT FALSE;

-- When the `consent.expired` event of an agreement that reached its end was recorded.
ALTER TABLE agreements ADD COLUMN end_announced_at TIMESTAMP;

-- The change log of asset_exposure that every process's allowed-set cache follows.
CREATE TABLE exposure_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX exposure_changes_created ON exposure_changes (created_at);

-- Webhook deliveries: one per event and endpoint, delivered in `seq` order per ordering key.
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
    message_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, ordering_key, seq);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, created_at);
