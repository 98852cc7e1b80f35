-- The outbox remembers whether a message's body holds a secret (a one-time code): such a body
-- is blanked once delivered. Twin of ../../postgres/2026-12-05-000004_outbox_secret.
ALTER TABLE outbox ADD COLUMN secret BOOLEAN NOT NULL DEFAULT FALSE;
