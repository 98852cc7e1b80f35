DROP TABLE IF EXISTS domain_events;
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS signing_keys;
DROP TABLE IF EXISTS consent_evidence;
DROP TABLE IF EXISTS otp_challenges;
DROP TABLE IF EXISTS signing_requests;
DROP TABLE IF EXISTS consent_template_versions;
DROP TABLE IF EXISTS consent_templates;
