/* fmt.c - money, counts, integers and CSV fields for the pages; see fmt.h. */
#include "web/fmt.h"

#include <stdio.h>
#include <string.h>

#include "ledger/money.h"

void web_fmt_count(int64_t v, char out[WEB_COUNT_LEN])
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%lld", (long long)v), i, j = 0;

	for (i = 0; i < n; i++) {
		if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0)
			out[j++] = ',';
		out[j++] = digits[i];
	}
	out[j] = '\0';
}

void web_add_count(cJSON *obj, const char *key, int64_t v)
{
	char s[WEB_COUNT_LEN];

	web_fmt_count(v, s);
	cJSON_AddStringToObject(obj, key, s);
}

void web_add_int(cJSON *obj, const char *key, int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", (long long)v);
	cJSON_AddStringToObject(obj, key, s);
}

void web_add_money(cJSON *obj, const char *key, int64_t micro)
{
	char s[MONEY_FMT_LEN];

	money_format_short(micro, s);
	cJSON_AddStringToObject(obj, key, s);
}

void web_csv_field(buf_t *b, const char *s, int text)
{
	int quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote)
		buf_putc(b, '"');
	if (text && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@'))
		buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '"')
			buf_putc(b, '"');
		buf_putc(b, *s);
	}
	if (quote)
		buf_putc(b, '"');
}
