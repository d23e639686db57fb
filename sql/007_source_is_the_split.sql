-- Version 7: where an image came from is its split, recorded once. Images added one at a time
-- (add-anomaly, an operator's decision, update) have split 'added' and survive re-indexing;
-- 'train' and 'test' images came with a dataset. Version 2's source column said it a second time.
UPDATE images SET split = 'added' WHERE source = 'added';
ALTER TABLE images DROP COLUMN source;
