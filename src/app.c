/* app.c - data directory, lock file, store setup. */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include "alerts/alerts.h"
#include "apikeys/apikeys.h"
#include "catalog/catalog.h"
#include "core/common.h"
#include "core/log.h"
#include "crypto/secrets.h"
#include "store/db.h"
#include "store/migrate.h"

static int lock_fd = -1;

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return TG_OK;
		snprintf(err, errlen, "data directory %s is not a directory", dir);
		return TG_EIO;
	}
	snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
	return TG_EIO;
}

int app_open_store(const tg_config_t *cfg, char *err, size_t errlen)
{
	char path[CONFIG_STR_MAX + 32];
	int rc, applied = 0;

	if ((rc = ensure_dir(cfg->data_dir, err, errlen)))
		return rc;
	if (cfg->database[0]) {
		char name[160], host[64] = "host";

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		if (cfg->instance[0])
			snprintf(name, sizeof(name), "%s", cfg->instance);
		else
			snprintf(name, sizeof(name), "%s-%ld", host, (long)getpid());
		if ((rc = db_configure_pg(cfg->database, name, 5))) {
			snprintf(err, errlen, "database URL or instance name is too long");
			return rc;
		}
		if (db_connect() != TG_OK) {
			/* libpq's message names the host, never the password. */
			snprintf(err, errlen, "cannot connect to the PostgreSQL database: %s",
				 db_errmsg());
			return TG_EDB;
		}
		return migrate_run(&applied, err, errlen);
	}
	if ((rc = config_data_path(cfg, "tollgate.db", path, sizeof(path)))) {
		snprintf(err, errlen, "data directory path is too long");
		return rc;
	}
	if ((rc = db_configure(path, strcmp(cfg->synchronous, "full") == 0,
			       (int)cfg->busy_timeout_ms))) {
		snprintf(err, errlen, "database path is too long");
		return rc;
	}
	if (db_connect() != TG_OK) {
		snprintf(err, errlen, "cannot open the database %s", path);
		return TG_EDB;
	}
	if ((rc = migrate_run(&applied, err, errlen)))
		return rc;
	return TG_OK;
}

int app_lock(const tg_config_t *cfg, char *err, size_t errlen)
{
	char path[CONFIG_STR_MAX + 32], pid[32], other[32] = "";
	ssize_t n;
	int rc;

	if ((rc = ensure_dir(cfg->data_dir, err, errlen)))
		return rc;
	config_data_path(cfg, "tollgate.lock", path, sizeof(path));
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		snprintf(err, errlen, "cannot open lock file %s: %s", path, strerror(errno));
		return TG_EIO;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		n = pread(lock_fd, other, sizeof(other) - 1, 0);
		if (n > 0)
			other[strcspn(other, "\n")] = '\0';
		snprintf(err, errlen,
			 "another tollgate server (pid %s) is already using the data directory %s; "
			 "stop it first or choose another --data-dir",
			 other[0] ? other : "unknown", cfg->data_dir);
		close(lock_fd);
		lock_fd = -1;
		return TG_ECONFLICT;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, pid, (size_t)n, 0) != n)
		log_warn("could not write the pid to %s", path);
	return TG_OK;
}

void app_unlock(void)
{
	if (lock_fd >= 0) {
		close(lock_fd);
		lock_fd = -1;
	}
}

/* Instances sharing a database must share the secret file: the first to
 * start records a fingerprint of it (a hash, not the keys), the others
 * compare. TG_OK when they agree. */
static int same_secrets(const struct tg_secrets *s)
{
	unsigned char fp[16];
	char hex[2 * sizeof(fp) + 1];
	crypto_generichash_state hs;
	tg_stmt *st;
	int rc, same = 0;

	crypto_generichash_init(&hs, (const unsigned char *)"tollgate-secrets", 16, sizeof(fp));
	crypto_generichash_update(&hs, s->pepper, sizeof(s->pepper));
	crypto_generichash_update(&hs, s->box_key, sizeof(s->box_key));
	crypto_generichash_final(&hs, fp, sizeof(fp));
	sodium_bin2hex(hex, sizeof(hex), fp, sizeof(fp));
	st = db_stmt("INSERT INTO tg_meta(name, value) VALUES ('secret_fingerprint', :fp)"
		     " ON CONFLICT (name) DO NOTHING");
	if (!st || db_bind_text(st, ":fp", hex) || db_exec_stmt(st))
		return TG_EDB;
	st = db_stmt("SELECT value FROM tg_meta WHERE name = 'secret_fingerprint'");
	if (!st)
		return TG_EDB;
	rc = db_step(st);
	if (rc == DB_ROW)
		same = strcmp(db_col_text(st, 0), hex) == 0;
	db_done(st);
	return same ? TG_OK : TG_EPERM;
}

int app_load_secrets(const tg_config_t *cfg, struct tg_secrets *s)
{
	char path[CONFIG_STR_MAX + 32], err[512];

	config_data_path(cfg, "secret.key", path, sizeof(path));
	if (secrets_load_or_create(path, s, err, sizeof(err))) {
		fprintf(stderr, "tollgate: %s\n", err);
		return TG_EPERM;
	}
	if (db_is_pg() && same_secrets(s) != TG_OK) {
		fprintf(stderr,
			"tollgate: %s is not the secret file the other instances on this database "
			"use (API keys and provider keys would not match); copy theirs here\n",
			path);
		return TG_EPERM;
	}
	return TG_OK;
}

void app_init_modules(const struct tg_secrets *s)
{
	(void)s;
	/* --- module init (one line per module) --- */
	apikeys_init(s->pepper);
	catalog_init(s);
	alerts_init(s);
	/* --- end module init --- */
}
