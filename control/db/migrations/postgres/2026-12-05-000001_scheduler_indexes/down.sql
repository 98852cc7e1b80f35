DROP INDEX IF EXISTS jobs_due_kind;
DROP INDEX IF EXISTS agreements_face_matching_until;
