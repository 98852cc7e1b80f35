-- The scheduler's queries: consents covering face matching by the end of their validity (the
-- expiry sweep and the jobs due when a consent ends), and due jobs of a kind.
CREATE INDEX agreements_face_matching_until ON agreements (covers_face_matching, valid_until);
CREATE INDEX jobs_due_kind ON jobs (status, kind, run_after);
