-- 0005: one row per gateway call, success or failure, plus per-org rate limits.

CREATE TABLE requests (
	id INTEGER PRIMARY KEY,
	request_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,      -- unix seconds
	org_id INTEGER NOT NULL REFERENCES orgs(id),
	key_id INTEGER REFERENCES api_keys(id),
	endpoint TEXT NOT NULL,           -- 'chat.completions' | 'embeddings'
	model TEXT NOT NULL DEFAULT '',   -- public model name as requested
	provider_id INTEGER REFERENCES providers(id),
	stream INTEGER NOT NULL DEFAULT 0,
	status INTEGER NOT NULL,          -- HTTP status returned to the client
	prompt_tokens INTEGER NOT NULL DEFAULT 0,
	cached_tokens INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	cost INTEGER NOT NULL DEFAULT 0,  -- micro-credits debited (0 when not billed)
	usage_source TEXT NOT NULL DEFAULT 'none' CHECK (usage_source IN ('reported', 'estimated', 'none')),
	upstream_ms INTEGER NOT NULL DEFAULT 0,
	total_ms INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX requests_org_time ON requests(org_id, created_at);
CREATE INDEX requests_key_time ON requests(key_id, created_at);
CREATE INDEX requests_request_id ON requests(request_id);

ALTER TABLE orgs ADD COLUMN rpm INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0); -- 0 = unlimited
ALTER TABLE orgs ADD COLUMN tpm INTEGER NOT NULL DEFAULT 0 CHECK (tpm >= 0);
