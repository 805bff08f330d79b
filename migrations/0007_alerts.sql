-- 0007: budget alerts. An org admin sets thresholds (the org balance below an
-- amount, or a share of a key's spend limit for its period); crossing one
-- shows a banner and, when the org has a webhook, POSTs a signed JSON event.

CREATE TABLE alert_thresholds (
	id INTEGER PRIMARY KEY,
	org_id INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	key_id INTEGER REFERENCES api_keys(id) ON DELETE CASCADE, -- NULL for balance_below
	kind TEXT NOT NULL CHECK (kind IN ('balance_below', 'key_share')),
	-- balance_below: micro-credits; key_share: percent of the key's spend limit
	value INTEGER NOT NULL CHECK (value > 0),
	armed INTEGER NOT NULL DEFAULT 1,        -- key_share: the next crossing fires
	fired_period INTEGER NOT NULL DEFAULT 0, -- key_share: period start last observed
	fired_at INTEGER NOT NULL DEFAULT 0,     -- unix seconds of the last crossing
	updated_at INTEGER NOT NULL,
	CHECK ((kind = 'balance_below') = (key_id IS NULL)),
	CHECK (kind = 'balance_below' OR value <= 100)
);
CREATE UNIQUE INDEX alert_thresholds_balance ON alert_thresholds(org_id) WHERE key_id IS NULL;
CREATE UNIQUE INDEX alert_thresholds_key ON alert_thresholds(key_id) WHERE key_id IS NOT NULL;

CREATE TABLE alert_webhooks (
	org_id INTEGER PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
	url TEXT NOT NULL CHECK (length(url) <= 512),
	secret TEXT NOT NULL,                    -- sealed with the server's box key
	updated_at INTEGER NOT NULL
);

-- One row per delivery attempt (up to three per event).
CREATE TABLE alert_deliveries (
	id INTEGER PRIMARY KEY,
	org_id INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	event_id TEXT NOT NULL,
	kind TEXT NOT NULL,                      -- threshold kind of the event
	attempt INTEGER NOT NULL,
	status INTEGER NOT NULL DEFAULT 0,       -- HTTP status; 0 when there was no answer
	ok INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	duration_ms INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_org ON alert_deliveries(org_id, id);
