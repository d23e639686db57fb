-- Version 2: images and memory-bank patches with their embeddings, and where each image came
-- from (source 'dataset': patchvec index, replaced by the next index; 'added': add-anomaly and
-- resolved reports, never removed by an index). The embedding columns get their dimension with
-- the first load (ALTER ... TYPE vector(D) while the tables are empty; patchvec_meta dimension).
-- Databases of patchvec 0.1 created images lazily, without a source: both cases end here.
CREATE TABLE IF NOT EXISTS images (
  id bigserial PRIMARY KEY,
  path text NOT NULL,
  category text NOT NULL,
  split text NOT NULL,
  anomalous boolean NOT NULL,
  defect text NOT NULL,
  score real,
  verdict text NOT NULL DEFAULT '',
  embedding vector NOT NULL
);
ALTER TABLE images ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'dataset';
UPDATE images SET source = 'added' WHERE split = 'added';
CREATE INDEX IF NOT EXISTS images_category ON images (category, anomalous);
CREATE TABLE IF NOT EXISTS patches (
  id bigserial PRIMARY KEY,
  category text NOT NULL,
  embedding vector NOT NULL
);
CREATE INDEX IF NOT EXISTS patches_category ON patches (category);
