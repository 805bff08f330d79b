/* fmt.h - how the dashboard writes numbers for people: money, counts with
 * thousands separators, plain integers (into page data as cJSON strings),
 * and CSV fields for the exports. Pure formatting: no request, no database.
 */
#ifndef TG_WEB_FMT_H
#define TG_WEB_FMT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

#define WEB_COUNT_LEN 32 /* "-9,223,372,036,854,775,808" and the NUL */

/* 1234567 -> "1,234,567" (a minus sign stays in front). */
void web_fmt_count(int64_t v, char out[WEB_COUNT_LEN]);
/* Page data key = v as a count ("1,234,567"). */
void web_add_count(cJSON *obj, const char *key, int64_t v);
/* Page data key = v as a plain integer ("1234567"), for form fields. */
void web_add_int(cJSON *obj, const char *key, int64_t v);
/* Page data key = micro-credits as money, the short form (money_format_short). */
void web_add_money(cJSON *obj, const char *key, int64_t micro);
/* Append one CSV field: quoted when it holds a comma, quote or line break.
 * text != 0 marks free text: one a spreadsheet would run as a formula
 * (starting with = + - @) gets a leading quote. */
void web_csv_field(buf_t *b, const char *s, int text);

#endif
