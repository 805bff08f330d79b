-- migrate: foreign-keys-off
-- 0009: native provider kinds (anthropic, gemini, azure) with an API
-- version, several deployments per model for fallback and load balancing,
-- a price for cache writes, and the detail of each call's usage and
-- attempts. The providers table is rebuilt for its kind CHECK (SQLite
-- cannot alter a CHECK), so this migration runs with foreign keys off and
-- checks them before it commits.

CREATE TABLE providers_new (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE COLLATE NOCASE,
	kind TEXT NOT NULL CHECK (kind IN ('openai', 'echo', 'anthropic', 'gemini', 'azure')),
	base_url TEXT NOT NULL DEFAULT '',      -- e.g. https://api.openai.com/v1
	api_key_sealed TEXT NOT NULL DEFAULT '', -- secretbox-sealed; write-only once saved
	timeout_s INTEGER NOT NULL DEFAULT 60 CHECK (timeout_s BETWEEN 1 AND 3600),
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	api_version TEXT NOT NULL DEFAULT ''     -- azure api-version, anthropic-version
);
INSERT INTO providers_new(id, name, kind, base_url, api_key_sealed, timeout_s, enabled,
			  created_at, updated_at)
	SELECT id, name, kind, base_url, api_key_sealed, timeout_s, enabled, created_at,
	       updated_at FROM providers;
DROP TABLE providers;
ALTER TABLE providers_new RENAME TO providers;

-- What one cache-write token costs (Anthropic's cache_creation_input_tokens),
-- micro-credits per 1M tokens; the primary deployment's weight; the model to
-- try when none of this one's deployments can answer (or the input does not
-- fit its context window).
ALTER TABLE models ADD COLUMN price_cache_write INTEGER NOT NULL DEFAULT 0
	CHECK (price_cache_write >= 0);
ALTER TABLE models ADD COLUMN weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 1000);
ALTER TABLE models ADD COLUMN fallback_model TEXT NOT NULL DEFAULT '';
UPDATE models SET price_cache_write = price_in;

-- More deployments of a model besides its own provider and upstream model
-- (priority 0, the model's weight): tried by priority, lower first, and by
-- weight among the healthy ones of a priority. NULL prices: the model's.
CREATE TABLE deployments (
	id INTEGER PRIMARY KEY,
	model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
	provider_id INTEGER NOT NULL REFERENCES providers(id),
	upstream_model TEXT NOT NULL,
	weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 1000),
	priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100),
	price_in INTEGER CHECK (price_in >= 0),
	price_cached_in INTEGER CHECK (price_cached_in >= 0),
	price_cache_write INTEGER CHECK (price_cache_write >= 0),
	price_out INTEGER CHECK (price_out >= 0),
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (model_id, provider_id, upstream_model)
);
CREATE INDEX deployments_provider ON deployments(provider_id);

ALTER TABLE requests ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
-- 1 for the answered attempt of a call tried once; a call that fell back has
-- one row per attempt, numbered, only the answered one billed.
ALTER TABLE requests ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
-- An attempt that failed over to another deployment (its own row in the
-- request log, never billed): not a call of the client's, so the usage
-- rollups leave it out.
ALTER TABLE requests ADD COLUMN failed_over INTEGER NOT NULL DEFAULT 0
	CHECK (failed_over IN (0, 1));
DROP TRIGGER requests_usage_rollup;
CREATE TRIGGER requests_usage_rollup AFTER INSERT ON requests
WHEN NEW.failed_over = 0
BEGIN
	INSERT INTO usage_hourly(org_id, hour, key_id, model, requests, errors, prompt_tokens,
				 completion_tokens, cost)
	VALUES (NEW.org_id, NEW.created_at - NEW.created_at % 3600, coalesce(NEW.key_id, 0),
		NEW.model, 1, NEW.status >= 400, NEW.prompt_tokens, NEW.completion_tokens, NEW.cost)
	ON CONFLICT (org_id, hour, key_id, model) DO UPDATE SET
		requests = requests + 1,
		errors = errors + excluded.errors,
		prompt_tokens = prompt_tokens + excluded.prompt_tokens,
		completion_tokens = completion_tokens + excluded.completion_tokens,
		cost = cost + excluded.cost;
	INSERT INTO usage_daily(org_id, day, key_id, model, requests, errors, prompt_tokens,
				completion_tokens, cost)
	VALUES (NEW.org_id, NEW.created_at - NEW.created_at % 86400, coalesce(NEW.key_id, 0),
		NEW.model, 1, NEW.status >= 400, NEW.prompt_tokens, NEW.completion_tokens, NEW.cost)
	ON CONFLICT (org_id, day, key_id, model) DO UPDATE SET
		requests = requests + 1,
		errors = errors + excluded.errors,
		prompt_tokens = prompt_tokens + excluded.prompt_tokens,
		completion_tokens = completion_tokens + excluded.completion_tokens,
		cost = cost + excluded.cost;
END;
