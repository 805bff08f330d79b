-- 0002: API keys. The key itself is never stored: only its BLAKE2b-256 hash
-- keyed with the server pepper, and a display prefix.

CREATE TABLE api_keys (
	id INTEGER PRIMARY KEY,
	org_id INTEGER NOT NULL REFERENCES orgs(id),
	created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
	name TEXT NOT NULL,
	prefix TEXT NOT NULL,              -- 'tg_' + first 8 random characters
	key_hash BLOB NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,                -- NULL: never expires
	revoked_at INTEGER,                -- stops working at this time (may be in the future after a rotation with grace)
	last_used_at INTEGER,
	rpm INTEGER NOT NULL DEFAULT 0 CHECK (rpm >= 0),            -- requests per minute; 0 = unlimited
	tpm INTEGER NOT NULL DEFAULT 0 CHECK (tpm >= 0),            -- tokens per minute; 0 = unlimited
	spend_limit INTEGER NOT NULL DEFAULT 0 CHECK (spend_limit >= 0), -- micro-credits per period; 0 = none
	spend_period TEXT NOT NULL DEFAULT 'none'
		CHECK (spend_period IN ('none', 'daily', 'weekly', 'monthly')),
	allowed_models TEXT NOT NULL DEFAULT '', -- comma-separated public model names; '' = every model
	rotated_from INTEGER REFERENCES api_keys(id)                -- the key this one replaced
);
CREATE INDEX api_keys_org ON api_keys(org_id, id);
CREATE INDEX api_keys_creator ON api_keys(created_by);
