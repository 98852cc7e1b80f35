-- Webhooks: an endpoint that failed is not tried again before this time (its backoff, shared by
-- all its deliveries: a receiver that is down gets one probe per interval, not one per file).
ALTER TABLE webhook_endpoints ADD COLUMN retry_after TIMESTAMP;
