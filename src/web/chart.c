/* chart.c - bar charts as template data for inline SVG; see chart.h. */
#include "web/chart.h"

#include <stdio.h>
#include <string.h>

#include "ledger/money.h"
#include "web/fmt.h"

#define PLOT_L10 (CHART_LEFT * 10)
#define PLOT_W10 ((CHART_W - CHART_LEFT - CHART_RIGHT) * 10)
#define BASE10 ((CHART_TOP + CHART_PLOT_H) * 10)
#define MIN_BAR10 10    /* a non-zero value is at least one unit tall */
#define MAX_BAR_W10 640 /* few buckets do not make slabs */
#define XLABEL_DY 14    /* x labels hang this far below the axis */
#define XLABEL_ROOM 30
#define LEGEND_ROW 36
#define LEGEND_SWATCH 14
#define TICKS 4

/* Fill opacity per stacked series: shades of the accent colour, so the
 * stylesheet's bar colour (and its dark-mode value) still applies. */
static const char *const series_opacity[CHART_MAX_SERIES] = {
	"1", "0.72", "0.5", "0.34", "0.22", "0.14", "0.86", "0.6",
};

static const char *const default_empty = "Nothing in this period yet.";

/* Tenths of a unit as "123.4" (or "123" for whole units). */
static void fmt10(int64_t v10, char out[24])
{
	if (v10 % 10)
		snprintf(out, 24, "%lld.%d", (long long)(v10 / 10), (int)(v10 % 10));
	else
		snprintf(out, 24, "%lld", (long long)(v10 / 10));
}

static void add10(cJSON *o, const char *key, int64_t v10)
{
	char s[24];

	fmt10(v10, s);
	cJSON_AddStringToObject(o, key, s);
}

/* ceil(a / b) for a >= 0, b > 0, without overflow. */
static int64_t ceil_div(int64_t a, int64_t b)
{
	return a / b + (a % b != 0);
}

void chart_format(enum chart_unit unit, int64_t v, char out[32])
{
	if (unit == CHART_MONEY)
		money_format_short(v, out);
	else
		web_fmt_count(v, out);
}

int64_t chart_nice_step(int64_t max, int ticks)
{
	static const int64_t mult[] = { 10, 20, 25, 50 }; /* tenths of the power of ten */
	int64_t p = 1;
	size_t i;

	if (max <= 0 || ticks < 1)
		return 1;
	for (;;) {
		for (i = 0; i < TG_ARRAY_LEN(mult); i++) {
			int64_t step;

			if (mult[i] == 25 && p < 10)
				continue; /* 2.5 is not a whole number of units */
			step = mult[i] / 10 * p + (mult[i] % 10) * (p / 10);
			if (ceil_div(max, step) <= ticks)
				return step;
		}
		if (p > INT64_MAX / 100)
			return p * 10;
		p *= 10;
	}
}

size_t chart_label_every(size_t n, size_t max_chars)
{
	int64_t need = (int64_t)max_chars * CHART_CHAR_W + CHART_LABEL_GAP; /* units */
	int64_t every, slot10;

	if (n <= 1)
		return 1;
	/* every * slot >= need, with the slot bars are drawn on */
	slot10 = PLOT_W10 / (int64_t)n;
	if (slot10 < 1)
		return n;
	every = (need * 10 + slot10 - 1) / slot10;
	return every < 1 ? 1 : (size_t)every;
}

static int check(const struct chart *c, int64_t *max)
{
	size_t i, s;

	if (!c || c->n > CHART_MAX_BUCKETS || c->nseries < 1 || c->nseries > CHART_MAX_SERIES ||
	    (c->n && (!c->values || !c->labels)) || (c->nseries > 1 && !c->names))
		return TG_EINVAL;
	*max = 0;
	for (i = 0; i < c->n; i++) {
		__int128 col = 0;

		for (s = 0; s < c->nseries; s++) {
			int64_t v = c->values[s * c->n + i];

			if (v < 0)
				return TG_EINVAL;
			col += v;
		}
		if (col > INT64_MAX)
			return TG_ERANGE;
		if ((int64_t)col > *max)
			*max = (int64_t)col;
	}
	return TG_OK;
}

/* Tenths of a unit for v on a plot whose top is `top`. */
static int64_t scale10(int64_t v, int64_t top)
{
	return (int64_t)((__int128)v * (CHART_PLOT_H * 10) / top);
}

static void add_grid(cJSON *d, const struct chart *c, int64_t top, int64_t step)
{
	cJSON *grid = cJSON_GetObjectItem(d, "grid");
	__int128 v;

	for (v = 0; v <= top; v += step) {
		cJSON *g = cJSON_CreateObject();
		char s[32];

		add10(g, "y", BASE10 - scale10((int64_t)v, top));
		chart_format(c->unit, (int64_t)v, s);
		cJSON_AddStringToObject(g, "label", s);
		cJSON_AddBoolToObject(g, "zero", v == 0);
		cJSON_AddItemToArray(grid, g);
	}
}

static void add_bars(cJSON *d, const struct chart *c, int64_t top)
{
	cJSON *bars = cJSON_GetObjectItem(d, "bars");
	int64_t slot10 = PLOT_W10 / (int64_t)c->n, bw10 = slot10 * 7 / 10;
	size_t i, s;

	if (bw10 > MAX_BAR_W10)
		bw10 = MAX_BAR_W10;
	if (bw10 < 4)
		bw10 = 4;
	for (i = 0; i < c->n; i++) {
		int64_t x10 = PLOT_L10 + (int64_t)i * slot10 + (slot10 - bw10) / 2;
		int64_t y10 = BASE10; /* top of the stack so far */

		for (s = 0; s < c->nseries; s++) {
			int64_t v = c->values[s * c->n + i], h10;
			char t[256], val[32];
			cJSON *b;

			if (v <= 0)
				continue;
			h10 = scale10(v, top);
			if (h10 < MIN_BAR10)
				h10 = MIN_BAR10;
			if (y10 - h10 < CHART_TOP * 10)
				h10 = y10 - CHART_TOP * 10;
			if (h10 <= 0)
				continue;
			y10 -= h10;
			b = cJSON_CreateObject();
			add10(b, "x", x10);
			add10(b, "y", y10);
			add10(b, "w", bw10);
			add10(b, "h", h10);
			chart_format(c->unit, v, val);
			if (c->nseries > 1)
				snprintf(t, sizeof(t), "%s · %s: %s %s", c->labels[i], c->names[s],
					 val, c->unit_word ? c->unit_word : "");
			else
				snprintf(t, sizeof(t), "%s: %s %s", c->labels[i], val,
					 c->unit_word ? c->unit_word : "");
			cJSON_AddStringToObject(b, "title", t);
			cJSON_AddStringToObject(b, "opacity", series_opacity[s]);
			cJSON_AddItemToArray(bars, b);
		}
	}
}

static void add_xlabels(cJSON *d, const struct chart *c)
{
	cJSON *xl = cJSON_GetObjectItem(d, "xlabels");
	const char *const *ticks = c->ticks ? c->ticks : c->labels;
	size_t i, longest = 1, every;
	int64_t slot10 = PLOT_W10 / (int64_t)c->n;

	for (i = 0; i < c->n; i++)
		if (strlen(ticks[i]) > longest)
			longest = strlen(ticks[i]);
	every = chart_label_every(c->n, longest);
	/* Anchor on the newest bucket so "today" always has its label. */
	for (i = 0; i < c->n; i++) {
		cJSON *x;

		if ((c->n - 1 - i) % every)
			continue;
		x = cJSON_CreateObject();
		add10(x, "x", PLOT_L10 + (int64_t)i * slot10 + slot10 / 2);
		cJSON_AddStringToObject(x, "label", ticks[i]);
		cJSON_AddItemToArray(xl, x);
	}
}

/* Legend rows under the x labels; returns the height they take. */
static int add_legend(cJSON *d, const struct chart *c, int y0)
{
	cJSON *lg = cJSON_GetObjectItem(d, "legend");
	int x = CHART_LEFT, y = y0, rows = 1;
	size_t s;

	for (s = 0; s < c->nseries; s++) {
		int w = LEGEND_SWATCH + 8 + (int)strlen(c->names[s]) * CHART_CHAR_W + 24;
		cJSON *o;

		if (x > CHART_LEFT && x + w > CHART_W) {
			x = CHART_LEFT;
			y += LEGEND_ROW;
			rows++;
		}
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "x", x);
		cJSON_AddNumberToObject(o, "y", y);
		cJSON_AddNumberToObject(o, "tx", x + LEGEND_SWATCH + 8);
		cJSON_AddNumberToObject(o, "ty", y + LEGEND_SWATCH / 2);
		cJSON_AddStringToObject(o, "name", c->names[s]);
		cJSON_AddStringToObject(o, "opacity", series_opacity[s]);
		cJSON_AddItemToArray(lg, o);
		x += w;
	}
	return rows * LEGEND_ROW;
}

cJSON *chart_json(const struct chart *c)
{
	cJSON *d;
	int64_t max = 0, step, top;
	int h = CHART_TOP + CHART_PLOT_H + XLABEL_DY + XLABEL_ROOM;

	if (check(c, &max))
		return NULL;
	if (!(d = cJSON_CreateObject()))
		return NULL;
	cJSON_AddStringToObject(d, "title", c->title ? c->title : "Chart");
	cJSON_AddNumberToObject(d, "left", CHART_LEFT);
	cJSON_AddNumberToObject(d, "right", CHART_W - CHART_RIGHT);
	cJSON_AddNumberToObject(d, "width", CHART_W);
	cJSON_AddNumberToObject(d, "base", CHART_TOP + CHART_PLOT_H);
	cJSON_AddNumberToObject(d, "label_x", CHART_LEFT - 8);
	cJSON_AddNumberToObject(d, "label_y", CHART_TOP + CHART_PLOT_H + XLABEL_DY);
	cJSON_AddNumberToObject(d, "mid_x", CHART_LEFT + (CHART_W - CHART_LEFT - CHART_RIGHT) / 2);
	cJSON_AddNumberToObject(d, "mid_y", CHART_TOP + CHART_PLOT_H / 2);
	cJSON_AddNumberToObject(d, "bars_count", 0);
	/* Every name the partial reads is set, so none falls through to the
	 * page's own data. */
	cJSON_AddArrayToObject(d, "grid");
	cJSON_AddArrayToObject(d, "bars");
	cJSON_AddArrayToObject(d, "xlabels");
	cJSON_AddArrayToObject(d, "legend");
	cJSON_AddBoolToObject(d, "empty", c->n == 0 || max == 0);
	if (c->n == 0 || max == 0) {
		cJSON_AddStringToObject(d, "empty_text",
					c->empty_text ? c->empty_text : default_empty);
		if (c->n)
			add_xlabels(d, c);
	} else {
		step = chart_nice_step(max, TICKS);
		{
			__int128 t = (__int128)ceil_div(max, step) * step;

			top = t > INT64_MAX ? INT64_MAX : (int64_t)t;
		}
		add_grid(d, c, top, step);
		add_bars(d, c, top);
		add_xlabels(d, c);
		if (c->nseries > 1)
			h += add_legend(d, c, h + 6) + 10;
		cJSON_ReplaceItemInObject(d, "bars_count",
					  cJSON_CreateNumber(cJSON_GetArraySize(
						  cJSON_GetObjectItem(d, "bars"))));
	}
	cJSON_AddNumberToObject(d, "height", h);
	return d;
}
