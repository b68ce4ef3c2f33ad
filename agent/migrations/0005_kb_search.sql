-- Offline knowledge-base search. One trigram FTS5 index over each article's text: trigrams
-- find substrings in any script (Chinese has no spaces to split words on), and FTS5 answers
-- LIKE '%…%' through the same index for terms of three characters or more. `kb_docs` gives
-- each article the integer rowid the index needs (`entities` has none).
CREATE TABLE kb_docs (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE kb_fts USING fts5(text, tokenize = 'trigram');
