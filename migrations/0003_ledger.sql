-- 0003: credits. orgs.balance is the cached sum of the org's ledger entries;
-- both change in one transaction. Entries are append-only and chained.

ALTER TABLE orgs ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;

CREATE TABLE redemption_codes (
	id INTEGER PRIMARY KEY,
	code_hash BLOB NOT NULL UNIQUE,   -- the code is shown once and stored hashed
	prefix TEXT NOT NULL,             -- for lists
	batch TEXT NOT NULL,              -- label of the batch it was made in
	amount INTEGER NOT NULL CHECK (amount > 0),
	created_at INTEGER NOT NULL,
	created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
	expires_at INTEGER,
	redeemed_at INTEGER,
	redeemed_org_id INTEGER REFERENCES orgs(id),
	redeemed_by INTEGER REFERENCES users(id) ON DELETE SET NULL
);

CREATE TABLE ledger_entries (
	id INTEGER PRIMARY KEY,
	org_id INTEGER NOT NULL REFERENCES orgs(id),
	created_at INTEGER NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('grant', 'adjust', 'redeem', 'usage')),
	amount INTEGER NOT NULL,          -- micro-credits; debits are negative
	balance_after INTEGER NOT NULL,   -- the org's balance once this entry applied
	request_id TEXT UNIQUE,           -- usage: the gateway request id, so a settle applies once
	key_id INTEGER REFERENCES api_keys(id),
	code_id INTEGER REFERENCES redemption_codes(id),
	actor_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
	actor TEXT NOT NULL DEFAULT '',
	memo TEXT NOT NULL DEFAULT '',
	chain BLOB NOT NULL               -- BLAKE2b over the previous entry's chain and this entry
);
CREATE INDEX ledger_org ON ledger_entries(org_id, id);
CREATE INDEX ledger_org_time ON ledger_entries(org_id, created_at);
CREATE INDEX ledger_key_time ON ledger_entries(key_id, created_at) WHERE key_id IS NOT NULL;

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
	SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
	SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;
