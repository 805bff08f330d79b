/* common.h - error codes and small macros shared by every module.
 *
 * Functions return 0 (TG_OK) on success and a negative TG_E* code on failure.
 * Cleanup happens at one `out:` label; pointers are set to NULL once their
 * ownership moves elsewhere.
 */
#ifndef TG_COMMON_H
#define TG_COMMON_H

#include <stddef.h>
#include <stdint.h>

enum tg_err {
	TG_OK = 0,
	TG_ENOMEM = -1,    /* allocation failed */
	TG_ETOOBIG = -2,   /* a capped buffer or input limit was reached */
	TG_EINVAL = -3,    /* malformed input */
	TG_ENOTFOUND = -4, /* no such row / file / key */
	TG_EDB = -5,       /* SQLite error */
	TG_EIO = -6,       /* file or socket error */
	TG_ECONFLICT = -7, /* uniqueness or state conflict (already exists, already used) */
	TG_EPERM = -8,     /* not allowed */
	TG_ERANGE = -9,    /* arithmetic overflow or value out of range */
	TG_EFUNDS = -10,   /* insufficient credits */
};

/* Short English name of an error code, for logs and messages. */
const char *tg_strerror(int err);

#define TG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TG_UNUSED(x) ((void)(x))

#endif
