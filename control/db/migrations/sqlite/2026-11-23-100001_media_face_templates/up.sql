-- (MEDIA) Matcher templates enrolled from confirmed faces: which template ids to remove when the
-- face is rejected or unlinked, the consent is withdrawn or the person is deleted.
CREATE TABLE face_templates (
    template_id BIGINT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    face_id TEXT NOT NULL REFERENCES faces(id),
    person_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, template_id)
);
CREATE INDEX face_templates_person ON face_templates (tenant_id, person_id);
CREATE INDEX face_templates_face ON face_templates (tenant_id, face_id);
CREATE INDEX jobs_tenant_kind ON jobs (tenant_id, kind, status);
