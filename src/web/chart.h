/* chart.h - server-rendered bar charts (inline SVG, no script).
 *
 * chart_json() turns buckets of int64 values into the data the template
 * partial "partials/chart" draws: a viewBox 960 units wide, gridlines on
 * round ticks with y-axis labels, bars (stacked when there is more than one
 * series) each with a hover title such as "2026-11-23: 1.25 credits",
 * x-axis labels thinned so they never overlap, and a legend for stacked
 * series. All geometry is integer arithmetic (coordinates in tenths of a
 * unit); money stays in micro-credits. Text reaches the page only through
 * the template renderer, which escapes it.
 */
#ifndef TG_CHART_H
#define TG_CHART_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CHART_W 960   /* viewBox width */
#define CHART_LEFT 64 /* room for the y-axis labels */
#define CHART_RIGHT 8
#define CHART_TOP 14
#define CHART_PLOT_H 200
#define CHART_MAX_BUCKETS 400
#define CHART_MAX_SERIES 8
/* Worst-case width of one label character in viewBox units: the stylesheet
 * grows the font to 29 units on the narrowest charts. */
#define CHART_CHAR_W 18
#define CHART_LABEL_GAP 14

enum chart_unit {
	CHART_MONEY, /* micro-credits, shown with money_format_short */
	CHART_COUNT, /* requests, tokens: thousands separators */
};

struct chart {
	const char *title; /* accessible name: "Spend per day" */
	enum chart_unit unit;
	const char *unit_word;     /* for hover titles: "credits", "requests", "tokens" */
	const char *empty_text;    /* shown when every value is 0 (NULL: a default) */
	size_t n;                  /* buckets, at most CHART_MAX_BUCKETS */
	const char *const *labels; /* n full labels for hover titles ("2026-11-23") */
	const char *const *ticks;  /* n short x-axis labels ("11-23"); NULL = labels */
	size_t nseries;            /* 1..CHART_MAX_SERIES */
	const char *const *names;  /* nseries legend names (ignored when nseries == 1) */
	const int64_t *values;     /* nseries * n values >= 0, series-major: values[s * n + i] */
};

/* The template data for c (caller frees with cJSON_Delete), or NULL when out
 * of memory or c is malformed (too many buckets or series, negative value, a
 * column that overflows int64). */
cJSON *chart_json(const struct chart *c);

/* A round step for the y axis: the smallest of 1, 2, 2.5, 5 x 10^k (integral)
 * that covers max in at most `ticks` steps. max <= 0 gives 1. */
int64_t chart_nice_step(int64_t max, int ticks);
/* Show every k-th x label so labels of max_chars characters never overlap
 * on n buckets across the plot; returns k >= 1. */
size_t chart_label_every(size_t n, size_t max_chars);
/* Value as text for an axis or a title: money with money_format_short,
 * counts with thousands separators ("1,234,567"). out holds 32 bytes. */
void chart_format(enum chart_unit unit, int64_t v, char out[32]);

#endif
