-- 0008: the gateway's call journal (src/gateway/journal.c). Finished calls
-- are appended to a journal file before the answer is sent and written here
-- in batches; applied_seq is the last journal record whose ledger entry and
-- request row are in the database, so replaying the files after a crash
-- skips what is already applied.
CREATE TABLE journal_state (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	applied_seq INTEGER NOT NULL CHECK (applied_seq >= 0)
);
INSERT INTO journal_state(id, applied_seq) VALUES (1, 0);
