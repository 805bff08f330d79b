-- 0006: hourly and daily rollups of `requests` for the dashboard's usage pages.
--
-- Why: the overview, /usage and the key and org charts sum spend, requests and
-- tokens per day over 30 days. Scanning `requests` for that costs one row per
-- call (seconds at a million rows). usage_daily holds one row per org, day, key
-- and model (100 keys x 4 models x 30 days = 12,000 rows), usage_hourly the same
-- per hour for the 48-hour and hour-by-hour views (which read a few days only).
-- tests/bench/pages.sh measures the pages at 1,000,000 requests.
--
-- Both are kept by a trigger on INSERT into `requests`, so they change in the
-- same transaction as the request row (and therefore as the ledger's usage
-- debit the gateway writes beside it): sum(cost) in either equals
-- sum(requests.cost) for the same period, exactly. `requests` rows are never
-- updated or deleted.

CREATE TABLE usage_hourly (
	org_id INTEGER NOT NULL,
	hour INTEGER NOT NULL,            -- created_at rounded down to the hour (unix seconds, UTC)
	key_id INTEGER NOT NULL,          -- 0 when the request had no key
	model TEXT NOT NULL,
	requests INTEGER NOT NULL DEFAULT 0,
	errors INTEGER NOT NULL DEFAULT 0, -- status >= 400
	prompt_tokens INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	cost INTEGER NOT NULL DEFAULT 0,   -- micro-credits, the sum of requests.cost
	PRIMARY KEY (org_id, hour, key_id, model)
) WITHOUT ROWID;
CREATE INDEX usage_hourly_key ON usage_hourly(key_id, hour);

CREATE TABLE usage_daily (
	org_id INTEGER NOT NULL,
	day INTEGER NOT NULL,             -- created_at rounded down to 00:00 UTC (unix seconds)
	key_id INTEGER NOT NULL,
	model TEXT NOT NULL,
	requests INTEGER NOT NULL DEFAULT 0,
	errors INTEGER NOT NULL DEFAULT 0,
	prompt_tokens INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	cost INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (org_id, day, key_id, model)
) WITHOUT ROWID;
CREATE INDEX usage_daily_key ON usage_daily(key_id, day);

INSERT INTO usage_hourly(org_id, hour, key_id, model, requests, errors, prompt_tokens,
			 completion_tokens, cost)
SELECT org_id, created_at - created_at % 3600, coalesce(key_id, 0), model, count(*),
       sum(status >= 400), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM requests GROUP BY 1, 2, 3, 4;

INSERT INTO usage_daily(org_id, day, key_id, model, requests, errors, prompt_tokens,
			completion_tokens, cost)
SELECT org_id, created_at - created_at % 86400, coalesce(key_id, 0), model, count(*),
       sum(status >= 400), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM requests GROUP BY 1, 2, 3, 4;

CREATE TRIGGER requests_usage_rollup AFTER INSERT ON requests
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

-- The request log pages newest first within an org.
CREATE INDEX requests_org_id ON requests(org_id, id);
