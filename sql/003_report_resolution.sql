-- Version 3: the operator's decision on a report, and where the reported image's bytes are kept.
ALTER TABLE reports ADD COLUMN image text NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN status text NOT NULL DEFAULT 'open'
  CHECK (status IN ('open', 'resolved'));
ALTER TABLE reports ADD COLUMN resolution text
  CHECK (resolution IS NULL OR resolution IN ('false_alarm', 'defect'));
ALTER TABLE reports ADD COLUMN defect text NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN note text NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN resolved_by text NOT NULL DEFAULT '';
ALTER TABLE reports ADD COLUMN resolved_at timestamptz;
ALTER TABLE reports ADD COLUMN applied boolean NOT NULL DEFAULT false;
CREATE INDEX reports_status ON reports (status, id);
