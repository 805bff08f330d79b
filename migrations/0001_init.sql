-- 0001: identity and access: users, organizations, memberships, sessions,
-- first-run setup tokens, login throttling and the audit log.
-- Times are unix seconds (UTC).

CREATE TABLE users (
	id INTEGER PRIMARY KEY,
	email TEXT NOT NULL UNIQUE COLLATE NOCASE,
	name TEXT NOT NULL DEFAULT '',
	password_hash TEXT NOT NULL,
	is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
	must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
	disabled_at INTEGER,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE orgs (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE COLLATE NOCASE,
	created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
	org_id INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	created_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

-- Session tokens are stored as BLAKE2b hashes; the cookie holds the token.
CREATE TABLE sessions (
	id INTEGER PRIMARY KEY,
	token_hash BLOB NOT NULL UNIQUE,
	user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	org_id INTEGER REFERENCES orgs(id) ON DELETE SET NULL, -- the org being viewed
	created_at INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL, -- absolute limit
	ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE setup_tokens (
	token_hash BLOB PRIMARY KEY,
	created_at INTEGER NOT NULL,
	used_at INTEGER
);

-- Failed sign-ins per email address, whether or not the account exists, so
-- throttling reveals nothing about which emails are registered.
CREATE TABLE login_throttle (
	email TEXT PRIMARY KEY COLLATE NOCASE,
	failures INTEGER NOT NULL DEFAULT 0,
	last_failure_at INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
	id INTEGER PRIMARY KEY,
	at INTEGER NOT NULL,
	actor_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
	actor TEXT NOT NULL,          -- email at the time, or 'cli' / 'system'
	org_id INTEGER REFERENCES orgs(id) ON DELETE SET NULL,
	action TEXT NOT NULL,         -- e.g. 'login.failed', 'member.add'
	target TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT '',
	ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_org ON audit_log(org_id, id);
