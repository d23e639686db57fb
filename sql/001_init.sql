-- PatchVec's PostgreSQL schema, version 1: categories and anomaly reports. Applied once, in a
-- transaction, by src/store/pg_store.cpp (never edit an applied migration: add the next one).
CREATE TABLE IF NOT EXISTS patchvec_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS categories (
  name text PRIMARY KEY,
  indexed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS reports (
  id bigserial PRIMARY KEY,
  path text NOT NULL,
  category text NOT NULL,
  score real NOT NULL,
  threshold real,
  best_similarity double precision NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  matches jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_category ON reports (category, id);
