ALTER TABLE webhook_endpoints DROP COLUMN retry_after;
