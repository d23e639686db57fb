-- Version 4: model files published to the database (patchvec publish), one row per revision of a
-- category; services started with --db and no --models serve each category's newest revision and
-- follow new ones (NOTIFY patchvec_models, payload "<category> <revision>", at each publish).
CREATE TABLE models (
  category text NOT NULL,
  revision integer NOT NULL CHECK (revision > 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  bytes bigint NOT NULL CHECK (bytes > 0),
  created timestamptz NOT NULL DEFAULT now(),
  source text NOT NULL DEFAULT '',
  content bytea NOT NULL,
  PRIMARY KEY (category, revision)
);
-- Floats do not compress: stored out of line without trying.
ALTER TABLE models ALTER COLUMN content SET STORAGE EXTERNAL;
