-- 0004: upstream providers and the models (with prices) the gateway offers.
-- Prices are int64 micro-credits per 1M tokens.

CREATE TABLE providers (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE COLLATE NOCASE,
	kind TEXT NOT NULL CHECK (kind IN ('openai', 'echo')),
	base_url TEXT NOT NULL DEFAULT '',      -- e.g. https://api.openai.com/v1
	api_key_sealed TEXT NOT NULL DEFAULT '', -- secretbox-sealed; write-only once saved
	timeout_s INTEGER NOT NULL DEFAULT 60 CHECK (timeout_s BETWEEN 1 AND 3600),
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE models (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,              -- the public name clients send
	provider_id INTEGER NOT NULL REFERENCES providers(id),
	upstream_model TEXT NOT NULL,
	kind TEXT NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'embedding')),
	price_in INTEGER NOT NULL CHECK (price_in >= 0),
	price_cached_in INTEGER NOT NULL CHECK (price_cached_in >= 0),
	price_out INTEGER NOT NULL CHECK (price_out >= 0),
	max_output_tokens INTEGER NOT NULL DEFAULT 4096 CHECK (max_output_tokens > 0),
	context_window INTEGER NOT NULL DEFAULT 8192 CHECK (context_window > 0),
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX models_provider ON models(provider_id);

-- A new install works offline: the built-in echo provider answers locally,
-- with demo models priced like a small and a large real model.
INSERT INTO providers(name, kind, base_url, timeout_s, enabled, created_at, updated_at)
VALUES ('echo', 'echo', '', 30, 1, strftime('%s', 'now'), strftime('%s', 'now'));
INSERT INTO models(name, provider_id, upstream_model, kind, price_in, price_cached_in, price_out,
		   max_output_tokens, context_window, enabled, created_at, updated_at)
VALUES
	('echo-small', (SELECT id FROM providers WHERE name = 'echo'), 'echo-small', 'chat',
	 150000, 75000, 600000, 16384, 128000, 1, strftime('%s', 'now'), strftime('%s', 'now')),
	('echo-large', (SELECT id FROM providers WHERE name = 'echo'), 'echo-large', 'chat',
	 2500000, 1250000, 10000000, 16384, 128000, 1, strftime('%s', 'now'), strftime('%s', 'now')),
	('echo-embed', (SELECT id FROM providers WHERE name = 'echo'), 'echo-embed', 'embedding',
	 20000, 0, 0, 1, 8192, 1, strftime('%s', 'now'), strftime('%s', 'now'));
