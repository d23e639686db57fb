-- Version 6: no memory-bank patches in the database. Version 2 kept each category's bank here
-- with an HNSW index that no query ever read (the model file holds the bank, and scoring needs
-- it in memory): a bank of 15,680 x 1536 took 247 MB and 15 s of index build per `patchvec
-- index`. Region-level search, when it comes, stores what it queries.
DROP TABLE IF EXISTS patches;
