/* secrets.c - secret file and sealed values; see secrets.h. */
#include "crypto/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRETS_HEADER "tollgate-secret-v1"
#define SECRETS_SEAL_TAG "v1:"
#define SECRETS_SEAL_TAG_LEN 3
#define SECRETS_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* A well-formed file is about 160 bytes; anything past this is not ours. */
#define SECRETS_FILE_MAX 4096
#define SECRETS_KEY_HEX 64

_Static_assert(sizeof(((tg_secrets_t *)0)->pepper) * 2 == SECRETS_KEY_HEX, "pepper size");
_Static_assert(crypto_secretbox_KEYBYTES * 2 == SECRETS_KEY_HEX, "box key size");

static void secrets_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void secrets_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void secrets_wipe(tg_secrets_t *s)
{
	sodium_memzero(s, sizeof(*s));
}

void secrets_plain_free(char *p, size_t n)
{
	if (!p)
		return;
	sodium_memzero(p, n);
	free(p);
}

/* Decode exactly SECRETS_KEY_HEX hex digits at hex into 32 bytes. */
static int secrets_unhex(const char *hex, size_t len, unsigned char out[32])
{
	size_t bin_len = 0;
	const char *end = NULL;

	if (len != SECRETS_KEY_HEX)
		return TG_EINVAL;
	if (sodium_hex2bin(out, 32, hex, len, NULL, &bin_len, &end) != 0 || bin_len != 32 ||
	    end != hex + len)
		return TG_EINVAL;
	return TG_OK;
}

/* Parse the n bytes at text (NUL-terminated at text[n]) into *s. On failure
 * *why names the problem without quoting the contents. */
static int secrets_parse(const char *text, size_t n, tg_secrets_t *s, const char **why)
{
	const char *line = text, *end = text + n, *nl, *val;
	size_t len;
	int have_pepper = 0, have_box = 0, first = 1;

	if (memchr(text, '\0', n)) {
		*why = "contains a NUL byte";
		return TG_EINVAL;
	}
	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		len = nl ? (size_t)(nl - line) : (size_t)(end - line);
		if (len && line[len - 1] == '\r')
			len--;
		if (first) {
			if (len != strlen(SECRETS_HEADER) || memcmp(line, SECRETS_HEADER, len)) {
				*why = "first line is not \"" SECRETS_HEADER "\"";
				return TG_EINVAL;
			}
			first = 0;
		} else if (len == 0) {
			/* blank lines are ignored */
		} else if (len > 7 && !memcmp(line, "pepper=", 7)) {
			val = line + 7;
			if (have_pepper++ || secrets_unhex(val, len - 7, s->pepper)) {
				*why = "bad or repeated pepper line";
				return TG_EINVAL;
			}
		} else if (len > 4 && !memcmp(line, "box=", 4)) {
			val = line + 4;
			if (have_box++ || secrets_unhex(val, len - 4, s->box_key)) {
				*why = "bad or repeated box line";
				return TG_EINVAL;
			}
		} else {
			*why = "unknown line";
			return TG_EINVAL;
		}
		line = nl ? nl + 1 : end;
	}
	if (first) {
		*why = "file is empty";
		return TG_EINVAL;
	}
	if (!have_pepper || !have_box) {
		*why = have_pepper ? "missing box line" : "missing pepper line";
		return TG_EINVAL;
	}
	return TG_OK;
}

/* Load from an open descriptor (which the caller closes). */
static int secrets_load_fd(int fd, const char *path, tg_secrets_t *out, char *err, size_t errlen)
{
	char text[SECRETS_FILE_MAX + 1];
	tg_secrets_t tmp;
	struct stat st;
	size_t n = 0;
	ssize_t r;
	const char *why = NULL;
	int rc;

	if (fstat(fd, &st) != 0) {
		secrets_errf(err, errlen, "cannot stat secret file %s: %s", path, strerror(errno));
		return TG_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		secrets_errf(err, errlen, "secret file %s is not a regular file", path);
		return TG_EINVAL;
	}
	if (st.st_mode & 077) {
		secrets_errf(err, errlen,
			     "secret file %s is readable by group or others (mode %04o); "
			     "run chmod 600 %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		return TG_EPERM;
	}
	for (;;) {
		r = read(fd, text + n, sizeof(text) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			secrets_errf(err, errlen, "cannot read secret file %s: %s", path,
				     strerror(errno));
			rc = TG_EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(text) - 1) {
			secrets_errf(err, errlen, "secret file %s is malformed (too large)", path);
			rc = TG_EINVAL;
			goto out;
		}
	}
	text[n] = '\0';
	rc = secrets_parse(text, n, &tmp, &why);
	if (rc) {
		secrets_errf(err, errlen, "secret file %s is malformed (%s)", path, why);
		goto out;
	}
	*out = tmp;
out:
	sodium_memzero(text, sizeof(text));
	sodium_memzero(&tmp, sizeof(tmp));
	return rc;
}

static int secrets_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Best effort: make the new directory entry durable. */
static void secrets_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	int fd;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Create the file with fresh keys. TG_ECONFLICT when it appeared meanwhile. */
static int secrets_create(const char *path, tg_secrets_t *out, char *err, size_t errlen)
{
	tg_secrets_t tmp;
	char pepper_hex[SECRETS_KEY_HEX + 1], box_hex[SECRETS_KEY_HEX + 1];
	char text[256];
	int fd = -1, n, rc, made = 0;

	randombytes_buf(tmp.pepper, sizeof(tmp.pepper));
	randombytes_buf(tmp.box_key, sizeof(tmp.box_key));
	sodium_bin2hex(pepper_hex, sizeof(pepper_hex), tmp.pepper, sizeof(tmp.pepper));
	sodium_bin2hex(box_hex, sizeof(box_hex), tmp.box_key, sizeof(tmp.box_key));
	n = snprintf(text, sizeof(text), SECRETS_HEADER "\npepper=%s\nbox=%s\n", pepper_hex,
		     box_hex);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		secrets_errf(err, errlen, "cannot format secret file %s", path);
		rc = TG_EINVAL;
		goto out;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST) {
			rc = TG_ECONFLICT;
			goto out;
		}
		secrets_errf(err, errlen, "cannot create secret file %s: %s", path,
			     strerror(errno));
		rc = TG_EIO;
		goto out;
	}
	made = 1;
	/* The umask may only remove bits; make the mode exactly 0600. */
	if (fchmod(fd, 0600) != 0 || secrets_write_all(fd, text, (size_t)n) != 0 ||
	    fsync(fd) != 0) {
		secrets_errf(err, errlen, "cannot write secret file %s: %s", path, strerror(errno));
		rc = TG_EIO;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		secrets_errf(err, errlen, "cannot write secret file %s: %s", path, strerror(errno));
		rc = TG_EIO;
		goto out;
	}
	fd = -1;
	secrets_sync_dir(path);
	*out = tmp;
	rc = TG_OK;
out:
	if (fd >= 0)
		close(fd);
	/* Do not leave a half-written file that would fail every later start. */
	if (rc && made)
		unlink(path);
	sodium_memzero(&tmp, sizeof(tmp));
	sodium_memzero(pepper_hex, sizeof(pepper_hex));
	sodium_memzero(box_hex, sizeof(box_hex));
	sodium_memzero(text, sizeof(text));
	return rc;
}

int secrets_load_or_create(const char *path, tg_secrets_t *out, char *err, size_t errlen)
{
	int fd, rc, attempt;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !*path || !out) {
		secrets_errf(err, errlen, "no secret file path given");
		return TG_EINVAL;
	}
	/* Two rounds: if another process creates the file between our failed
	 * open and our O_EXCL create, load what it wrote. */
	for (attempt = 0; attempt < 2; attempt++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			rc = secrets_load_fd(fd, path, out, err, errlen);
			close(fd);
			return rc;
		}
		if (errno != ENOENT) {
			secrets_errf(err, errlen, "cannot open secret file %s: %s", path,
				     strerror(errno));
			return TG_EIO;
		}
		rc = secrets_create(path, out, err, errlen);
		if (rc != TG_ECONFLICT)
			return rc;
	}
	secrets_errf(err, errlen, "secret file %s keeps appearing and disappearing", path);
	return TG_EIO;
}

int secrets_seal(const tg_secrets_t *s, const void *plain, size_t n, char **out)
{
	unsigned char *bin = NULL;
	char *str = NULL;
	size_t bin_len, b64_len;
	int rc;

	if (!plain && n)
		return TG_EINVAL;
	if (n > SECRETS_MAX_PLAIN)
		return TG_ETOOBIG;
	if (!plain)
		plain = "";
	bin_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	b64_len = sodium_base64_ENCODED_LEN(bin_len, SECRETS_B64); /* includes the NUL */
	bin = malloc(bin_len);
	str = malloc(SECRETS_SEAL_TAG_LEN + b64_len);
	if (!bin || !str) {
		rc = TG_ENOMEM;
		goto out;
	}
	randombytes_buf(bin, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(bin + crypto_secretbox_NONCEBYTES, plain, n, bin, s->box_key);
	memcpy(str, SECRETS_SEAL_TAG, SECRETS_SEAL_TAG_LEN);
	sodium_bin2base64(str + SECRETS_SEAL_TAG_LEN, b64_len, bin, bin_len, SECRETS_B64);
	*out = str;
	str = NULL;
	rc = TG_OK;
out:
	free(bin);
	free(str);
	return rc;
}

int secrets_open(const tg_secrets_t *s, const char *sealed, char **plain_out, size_t *n_out)
{
	const size_t overhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
	const size_t b64_max = sodium_base64_ENCODED_LEN(overhead + SECRETS_MAX_PLAIN, SECRETS_B64);
	unsigned char *bin = NULL;
	char *plain = NULL;
	const char *b64, *end = NULL;
	size_t b64_len, bin_cap, bin_len = 0, n = 0;
	int rc;

	if (!sealed || strncmp(sealed, SECRETS_SEAL_TAG, SECRETS_SEAL_TAG_LEN) != 0)
		return TG_EINVAL;
	b64 = sealed + SECRETS_SEAL_TAG_LEN;
	b64_len = strnlen(b64, b64_max);
	if (b64_len >= b64_max)
		return TG_EINVAL;
	bin_cap = b64_len / 4 * 3 + 3;
	bin = malloc(bin_cap);
	if (!bin)
		return TG_ENOMEM;
	if (sodium_base642bin(bin, bin_cap, b64, b64_len, NULL, &bin_len, &end, SECRETS_B64) != 0 ||
	    end != b64 + b64_len || bin_len < overhead) {
		rc = TG_EINVAL;
		goto out;
	}
	n = bin_len - overhead;
	plain = malloc(n + 1);
	if (!plain) {
		rc = TG_ENOMEM;
		goto out;
	}
	if (crypto_secretbox_open_easy((unsigned char *)plain, bin + crypto_secretbox_NONCEBYTES,
				       bin_len - crypto_secretbox_NONCEBYTES, bin,
				       s->box_key) != 0) {
		rc = TG_EINVAL;
		goto out;
	}
	plain[n] = '\0';
	*plain_out = plain;
	*n_out = n;
	plain = NULL;
	rc = TG_OK;
out:
	if (plain)
		secrets_plain_free(plain, n);
	free(bin);
	return rc;
}
