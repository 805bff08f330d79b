-- The client address of each call: the TCP peer's, or behind a trusted
-- proxy the one it forwarded for (trusted_proxies). Rows from before: ''.
ALTER TABLE requests ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
