/* common.c - error names. */
#include "core/common.h"

const char *tg_strerror(int err)
{
	switch (err) {
	case TG_OK:
		return "ok";
	case TG_ENOMEM:
		return "out of memory";
	case TG_ETOOBIG:
		return "too large";
	case TG_EINVAL:
		return "invalid input";
	case TG_ENOTFOUND:
		return "not found";
	case TG_EDB:
		return "database error";
	case TG_EIO:
		return "I/O error";
	case TG_ECONFLICT:
		return "conflict";
	case TG_EPERM:
		return "not permitted";
	case TG_ERANGE:
		return "out of range";
	case TG_EFUNDS:
		return "insufficient credits";
	}
	return "unknown error";
}
