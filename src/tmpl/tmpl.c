/* tmpl.c - Mustache parser and renderer; see tmpl.h.
 *
 * A template is parsed in three passes: tokenize (find the tags, honouring
 * set-delimiter tags), match (pair every section, parent and block with its
 * close tag) and build (the node tree). The build pass decides which tags are
 * standalone and removes the whitespace that makes them so, so rendering
 * never looks at the source again.
 *
 * Indentation. A standalone partial prepends its indentation to every line it
 * renders. The renderer keeps the active indentation in a buffer plus a
 * "beginning of line" flag, and writes the indentation before the first
 * output of each line that started with a newline from template text; a
 * newline inside an interpolated value does not start an indented line.
 *
 * Inheritance. A parent {{<p}}...{{/p}} is a partial with arguments: the
 * blocks {{$b}}...{{/b}} directly inside it (other text there is ignored).
 * Rendering keeps a chain of argument lists; a block site renders the
 * outermost argument of its name, or its own default content. Blocks are
 * re-indented: when a block's opening tag stands alone on its line, the
 * indentation of its first content line is removed from every content line
 * at parse time, and at a block site that indentation (or the blanks before
 * an opening tag that starts its line) is added back at render time. A
 * parent whose opening tag starts a line and whose closing tag ends one is
 * standalone as a whole, like a partial tag.
 */
#include "tmpl/tmpl.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NONE SIZE_MAX
#define DELIM_MAX 16        /* longest custom delimiter */
#define RENDER_NEST_MAX 512 /* nested node lists on the C stack while rendering */
#define INDENT_MAX ((size_t)64 << 10)
#define DIR_DEPTH_MAX 16 /* directory levels tmpl_set_load_dir descends */

/* ---- compiled form ---- */

enum ntype { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED, N_PARTIAL, N_PARENT, N_BLOCK };

struct node;

struct nodelist {
	struct node *v;
	size_t n, cap;
};

struct node {
	enum ntype type;
	buf_t text;      /* N_TEXT */
	char *name;      /* tag name as written (trimmed) */
	char *path;      /* VAR/RAW/SECTION/INVERTED: name split at '.' into NUL-separated parts */
	unsigned npath;  /* number of parts; 0 means the implicit iterator "." */
	bool standalone; /* PARTIAL/PARENT/BLOCK: `indent` applies to every rendered line */
	char *indent;
	size_t indent_len;
	struct nodelist kids; /* SECTION/INVERTED/BLOCK: body; PARENT: its N_BLOCK arguments */
};

struct tmpl {
	char *name;
	struct nodelist root;
};

/* Open-addressing hash table of templates by name; cap is a power of two. */
struct tmpl_set {
	struct tmpl **slot;
	size_t cap, count;
};

static void nodes_free(struct nodelist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct node *nd = &l->v[i];

		buf_free(&nd->text);
		free(nd->name);
		free(nd->path);
		free(nd->indent);
		nodes_free(&nd->kids);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static void tmpl_free(struct tmpl *t)
{
	if (!t)
		return;
	nodes_free(&t->root);
	free(t->name);
	free(t);
}

/* Append a zeroed node to l; *out points at it until l grows again. */
static int list_push(struct nodelist *l, enum ntype type, struct node **out)
{
	struct node *v;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 8;
		v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return TG_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	*out = &l->v[l->n++];
	memset(*out, 0, sizeof **out);
	(*out)->type = type;
	buf_init(&(*out)->text, TMPL_MAX_FILE); /* a piece of one template */
	return TG_OK;
}

/* ---- parser ---- */

enum {
	TK_VAR = 'v',
	TK_RAW = '&',
	TK_SECTION = '#',
	TK_INVERTED = '^',
	TK_CLOSE = '/',
	TK_PARTIAL = '>',
	TK_PARENT = '<',
	TK_BLOCK = '$',
	TK_COMMENT = '!',
	TK_DELIM = '=',
};

struct tok {
	char type;         /* TK_* */
	int line;          /* line of the opening delimiter, from 1 */
	size_t start, end; /* the whole tag, delimiters included */
	size_t name, nlen; /* trimmed tag content */
	size_t match;      /* index of the matching open or close tag */
};

struct parser {
	const char *tname; /* template name, for messages */
	const char *s;
	size_t n;
	struct tok *t;
	size_t nt, tcap;
	size_t pos; /* build pass: source consumed so far */
	char *err;
	size_t errlen;
};

/* Build-pass context for one level of the tree. */
struct bctx {
	size_t strip;   /* blanks removed from the start of each line (block re-indentation) */
	bool in_parent; /* directly inside a parent tag: only blocks count */
};

static int perr(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, int line, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (p->err && p->errlen) {
		k = snprintf(p->err, p->errlen, "%s:%d: ", p->tname, line);
		if (k >= 0 && (size_t)k < p->errlen) {
			va_start(ap, fmt);
			vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
			va_end(ap);
		}
	}
	return TG_EINVAL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int count_lines(const char *s, size_t n)
{
	const char *end = s + n, *nl;
	int k = 0;

	while (s < end && (nl = memchr(s, '\n', (size_t)(end - s)))) {
		k++;
		s = nl + 1;
	}
	return k;
}

static int tok_push(struct parser *p, const struct tok *tk)
{
	struct tok *v;
	size_t cap;

	if (p->nt == p->tcap) {
		cap = p->tcap ? p->tcap * 2 : 32;
		v = realloc(p->t, cap * sizeof *v);
		if (!v)
			return TG_ENOMEM;
		p->t = v;
		p->tcap = cap;
	}
	p->t[p->nt++] = *tk;
	return TG_OK;
}

/* Parse the content of a set-delimiter tag into otag/ctag. */
static int set_delims(struct parser *p, const struct tok *tk, char *otag, size_t *ol, char *ctag,
		      size_t *cl)
{
	const char *s = p->s + tk->name, *end = s + tk->nlen, *a, *b;
	size_t al, bl;

	a = s;
	while (s < end && !is_space(*s))
		s++;
	al = (size_t)(s - a);
	while (s < end && is_space(*s))
		s++;
	b = s;
	while (s < end && !is_space(*s))
		s++;
	bl = (size_t)(s - b);
	if (!al || !bl || s != end || al > DELIM_MAX || bl > DELIM_MAX || memchr(a, '=', al) ||
	    memchr(b, '=', bl))
		return perr(p, tk->line, "bad set-delimiter tag '%.*s'", (int)tk->nlen,
			    p->s + tk->name);
	memcpy(otag, a, al);
	*ol = al;
	memcpy(ctag, b, bl);
	*cl = bl;
	return TG_OK;
}

static int tokenize(struct parser *p)
{
	char otag[DELIM_MAX] = "{{", ctag[DELIM_MAX] = "}}", closer[DELIM_MAX + 1];
	size_t ol = 2, cl = 2, pos = 0, lpos = 0, q, k, clen, a, b;
	const char *hit;
	struct tok tk;
	int line = 1, rc;

	while (pos < p->n) {
		hit = memmem(p->s + pos, p->n - pos, otag, ol);
		if (!hit)
			break;
		memset(&tk, 0, sizeof tk);
		tk.start = (size_t)(hit - p->s);
		line += count_lines(p->s + lpos, tk.start - lpos);
		lpos = tk.start;
		tk.line = line;
		q = tk.start + ol;
		tk.type = q < p->n ? p->s[q] : 0;
		clen = 0;
		switch (tk.type) {
		case '{':
		case '=':
			closer[clen++] = tk.type == '{' ? '}' : '=';
			tk.type = tk.type == '{' ? TK_RAW : TK_DELIM;
			q++;
			break;
		case TK_RAW:
		case TK_SECTION:
		case TK_INVERTED:
		case TK_CLOSE:
		case TK_PARTIAL:
		case TK_PARENT:
		case TK_BLOCK:
		case TK_COMMENT:
			q++;
			break;
		default:
			tk.type = TK_VAR;
		}
		memcpy(closer + clen, ctag, cl);
		clen += cl;
		hit = q <= p->n ? memmem(p->s + q, p->n - q, closer, clen) : NULL;
		if (!hit)
			return perr(p, line, "unclosed tag");
		k = (size_t)(hit - p->s);
		tk.end = k + clen;
		a = q;
		b = k;
		while (a < b && is_space(p->s[a]))
			a++;
		while (b > a && is_space(p->s[b - 1]))
			b--;
		tk.name = a;
		tk.nlen = b - a;
		if (tk.type != TK_COMMENT && tk.type != TK_DELIM) {
			if (!tk.nlen)
				return perr(p, line, "empty tag");
			for (k = a; k < b; k++)
				if (is_space(p->s[k]))
					return perr(p, line, "bad tag name '%.*s'", (int)tk.nlen,
						    p->s + a);
		}
		if ((rc = tok_push(p, &tk)))
			return rc;
		if (tk.type == TK_DELIM && (rc = set_delims(p, &tk, otag, &ol, ctag, &cl)))
			return rc;
		pos = tk.end;
	}
	return TG_OK;
}

static bool opens_section(char type)
{
	return type == TK_SECTION || type == TK_INVERTED || type == TK_PARENT || type == TK_BLOCK;
}

/* Pair every opening tag with its close tag (both get .match). */
static int match_tags(struct parser *p)
{
	size_t stack[TMPL_MAX_NEST], depth = 0, i, o;
	struct tok *t, *ot;

	for (i = 0; i < p->nt; i++) {
		t = &p->t[i];
		if (opens_section(t->type)) {
			if (depth == TMPL_MAX_NEST)
				return perr(p, t->line, "sections nest deeper than %d",
					    TMPL_MAX_NEST);
			stack[depth++] = i;
		} else if (t->type == TK_CLOSE) {
			if (!depth)
				return perr(p, t->line, "close tag '%.*s' without an open section",
					    (int)t->nlen, p->s + t->name);
			o = stack[--depth];
			ot = &p->t[o];
			if (ot->nlen != t->nlen || memcmp(p->s + ot->name, p->s + t->name, t->nlen))
				return perr(
					p, t->line,
					"close tag '%.*s' does not match '%.*s' opened at line %d",
					(int)t->nlen, p->s + t->name, (int)ot->nlen,
					p->s + ot->name, ot->line);
			ot->match = i;
			t->match = o;
		}
	}
	if (depth) {
		ot = &p->t[stack[depth - 1]];
		return perr(p, ot->line, "unclosed section '%.*s'", (int)ot->nlen, p->s + ot->name);
	}
	return TG_OK;
}

/* Start of the blanks before `at` if only blanks lie between the start of its
 * line and `at`; NONE otherwise. */
static size_t line_lead(const struct parser *p, size_t at)
{
	size_t k = at;

	while (k > 0 && is_blank(p->s[k - 1]))
		k--;
	return (k == 0 || p->s[k - 1] == '\n') ? k : NONE;
}

/* Just past the end of the line `at` is on (or the end of the text) if only
 * blanks lie between `at` and there; NONE otherwise. */
static size_t line_tail(const struct parser *p, size_t at)
{
	size_t k = at;

	while (k < p->n && is_blank(p->s[k]))
		k++;
	if (k == p->n)
		return k;
	if (p->s[k] == '\n')
		return k + 1;
	if (p->s[k] == '\r' && k + 1 < p->n && p->s[k + 1] == '\n')
		return k + 2;
	return NONE;
}

/* Skip at most `strip` blanks from `at`, not going past `lim`. */
static size_t skip_strip(const struct parser *p, size_t at, size_t lim, size_t strip)
{
	while (strip > 0 && at < lim && is_blank(p->s[at])) {
		at++;
		strip--;
	}
	return at;
}

/* Append source text [from, to) to l, removing up to `strip` blanks at the
 * start of every line in it. Adjacent text is merged into one node. */
static int add_text(struct parser *p, struct nodelist *l, size_t from, size_t to, size_t strip)
{
	struct node *nd;
	const char *nl;
	size_t e;
	int rc;

	while (from < to) {
		if (strip && (from == 0 || p->s[from - 1] == '\n')) {
			from = skip_strip(p, from, to, strip);
			if (from == to)
				break;
		}
		if (strip) {
			nl = memchr(p->s + from, '\n', to - from);
			e = nl ? (size_t)(nl - p->s) + 1 : to;
		} else {
			e = to;
		}
		if (l->n && l->v[l->n - 1].type == N_TEXT) {
			nd = &l->v[l->n - 1];
		} else if ((rc = list_push(l, N_TEXT, &nd))) {
			return rc;
		}
		if ((rc = buf_append(&nd->text, p->s + from, e - from)))
			return rc;
		from = e;
	}
	return TG_OK;
}

/* Give nd the name of token t, split into parts when `dotted`. */
static int set_name(struct parser *p, struct node *nd, const struct tok *t, bool dotted)
{
	size_t i;
	char *c;

	nd->name = strndup(p->s + t->name, t->nlen);
	if (!nd->name)
		return TG_ENOMEM;
	if (!dotted || !strcmp(nd->name, "."))
		return TG_OK;
	nd->path = strdup(nd->name);
	if (!nd->path)
		return TG_ENOMEM;
	nd->npath = 1;
	for (c = nd->path; *c; c++) {
		if (*c == '.') {
			*c = '\0';
			nd->npath++;
		}
	}
	for (c = nd->path, i = 0; i < nd->npath; i++, c += strlen(c) + 1)
		if (!*c)
			return perr(p, t->line, "bad name '%s'", nd->name);
	return TG_OK;
}

static int set_indent(struct node *nd, const char *s, size_t n)
{
	nd->standalone = true;
	nd->indent_len = n;
	nd->indent = strndup(s, n);
	return nd->indent ? TG_OK : TG_ENOMEM;
}

/* Handle close tag ci of a section or block site: a standalone close tag
 * takes its whole line with it. */
static int close_tag(struct parser *p, struct nodelist *kids, size_t ci, size_t strip)
{
	const struct tok *c = &p->t[ci];
	size_t lead = line_lead(p, c->start), tail = line_tail(p, c->end);
	bool sa = lead != NONE && tail != NONE;
	int rc;

	rc = add_text(p, kids, p->pos, sa ? lead : c->start, strip);
	p->pos = sa ? tail : c->end;
	return rc;
}

static int build(struct parser *p, struct nodelist *l, size_t from, size_t to, struct bctx cx);

/* {{$name}} inside a parent: an argument. */
static int build_arg(struct parser *p, struct nodelist *l, size_t i, struct bctx cx)
{
	const struct tok *t = &p->t[i], *c = &p->t[t->match];
	struct bctx in = { cx.strip, false };
	size_t tail = line_tail(p, t->end), k, lead;
	struct node *nd;
	int rc;

	if (tail != NONE) {
		/* Content starts on the next line; its indentation is removed. */
		k = skip_strip(p, tail, p->n, cx.strip);
		while (k < p->n && is_blank(p->s[k]))
			k++;
		in.strip = cx.strip + (k - skip_strip(p, tail, p->n, cx.strip));
		p->pos = tail;
	} else {
		p->pos = t->end;
	}
	if ((rc = list_push(l, N_BLOCK, &nd)) || (rc = set_name(p, nd, t, false)))
		return rc;
	if ((rc = build(p, &nd->kids, i + 1, t->match, in)))
		return rc;
	lead = line_lead(p, c->start);
	if ((rc = add_text(p, &nd->kids, p->pos, lead != NONE ? lead : c->start, in.strip)))
		return rc;
	p->pos = c->end;
	return TG_OK;
}

/* {{$name}} outside a parent: a block site with default content. */
static int build_block(struct parser *p, struct nodelist *l, size_t i, struct bctx cx)
{
	const struct tok *t = &p->t[i], *c = &p->t[t->match];
	size_t lead = line_lead(p, t->start), tail = line_tail(p, t->end), a, k;
	struct bctx in = cx;
	struct node *nd;
	int rc;

	if ((rc = add_text(p, l, p->pos, lead != NONE ? lead : t->start, cx.strip)))
		return rc;
	if ((rc = list_push(l, N_BLOCK, &nd)) || (rc = set_name(p, nd, t, false)))
		return rc;
	if (lead != NONE && tail != NONE) {
		/* Opening tag alone on its line: the block's indentation is that
		 * of its first content line, or of the tag if there is none. */
		a = skip_strip(p, lead, t->start, cx.strip);
		if (t->match == i + 1 && line_lead(p, c->start) == tail) {
			rc = set_indent(nd, p->s + a, t->start - a);
		} else {
			a = skip_strip(p, tail, p->n, cx.strip);
			for (k = a; k < p->n && is_blank(p->s[k]); k++)
				;
			rc = set_indent(nd, p->s + a, k - a);
		}
		in.strip = cx.strip + nd->indent_len;
		p->pos = tail;
	} else if (lead != NONE) {
		a = skip_strip(p, lead, t->start, cx.strip);
		rc = set_indent(nd, p->s + a, t->start - a);
		p->pos = t->end;
	} else {
		p->pos = t->end;
	}
	if (rc || (rc = build(p, &nd->kids, i + 1, t->match, in)))
		return rc;
	return close_tag(p, &nd->kids, t->match, in.strip);
}

static int build_parent(struct parser *p, struct nodelist *l, size_t i, struct bctx cx)
{
	const struct tok *t = &p->t[i], *c = &p->t[t->match];
	size_t lead = line_lead(p, t->start), tail = line_tail(p, c->end), a;
	bool sa = lead != NONE && tail != NONE;
	struct bctx in = { cx.strip, true };
	struct node *nd;
	int rc;

	if ((rc = add_text(p, l, p->pos, sa ? lead : t->start, cx.strip)))
		return rc;
	if ((rc = list_push(l, N_PARENT, &nd)) || (rc = set_name(p, nd, t, false)))
		return rc;
	if (sa) {
		a = skip_strip(p, lead, t->start, cx.strip);
		if ((rc = set_indent(nd, p->s + a, t->start - a)))
			return rc;
	}
	p->pos = t->end;
	if ((rc = build(p, &nd->kids, i + 1, t->match, in)))
		return rc;
	p->pos = sa ? tail : c->end;
	return TG_OK;
}

/* Build nodes for tokens [from, to) into l. */
static int build(struct parser *p, struct nodelist *l, size_t from, size_t to, struct bctx cx)
{
	const struct tok *t;
	struct node *nd;
	size_t i = from, lead, tail, a;
	bool sa;
	int rc = TG_OK;

	while (i < to && !rc) {
		t = &p->t[i];
		switch (t->type) {
		case TK_VAR:
		case TK_RAW:
			if (!cx.in_parent) {
				if ((rc = add_text(p, l, p->pos, t->start, cx.strip)) ||
				    (rc = list_push(l, t->type == TK_VAR ? N_VAR : N_RAW, &nd)) ||
				    (rc = set_name(p, nd, t, true)))
					break;
			}
			p->pos = t->end;
			i++;
			break;
		case TK_COMMENT:
		case TK_DELIM:
		case TK_PARTIAL:
			lead = line_lead(p, t->start);
			tail = line_tail(p, t->end);
			sa = lead != NONE && tail != NONE;
			if (!cx.in_parent) {
				if ((rc = add_text(p, l, p->pos, sa ? lead : t->start, cx.strip)))
					break;
				if (t->type == TK_PARTIAL) {
					if ((rc = list_push(l, N_PARTIAL, &nd)) ||
					    (rc = set_name(p, nd, t, false)))
						break;
					a = sa ? skip_strip(p, lead, t->start, cx.strip) : 0;
					if (sa && (rc = set_indent(nd, p->s + a, t->start - a)))
						break;
				}
			}
			p->pos = sa ? tail : t->end;
			i++;
			break;
		case TK_SECTION:
		case TK_INVERTED:
			if (cx.in_parent) {
				p->pos = p->t[t->match].end;
				i = t->match + 1;
				break;
			}
			lead = line_lead(p, t->start);
			tail = line_tail(p, t->end);
			sa = lead != NONE && tail != NONE;
			if ((rc = add_text(p, l, p->pos, sa ? lead : t->start, cx.strip)) ||
			    (rc = list_push(l, t->type == TK_SECTION ? N_SECTION : N_INVERTED,
					    &nd)) ||
			    (rc = set_name(p, nd, t, true)))
				break;
			p->pos = sa ? tail : t->end;
			if ((rc = build(p, &nd->kids, i + 1, t->match,
					(struct bctx){ cx.strip, false })))
				break;
			rc = close_tag(p, &nd->kids, t->match, cx.strip);
			i = t->match + 1;
			break;
		case TK_PARENT:
			if (cx.in_parent) {
				p->pos = p->t[t->match].end;
				i = t->match + 1;
				break;
			}
			rc = build_parent(p, l, i, cx);
			i = t->match + 1;
			break;
		case TK_BLOCK:
			rc = cx.in_parent ? build_arg(p, l, i, cx) : build_block(p, l, i, cx);
			i = t->match + 1;
			break;
		default: /* TK_CLOSE never appears unmatched inside a range */
			return perr(p, t->line, "unexpected close tag");
		}
	}
	return rc;
}

/* ---- the set ---- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static const struct tmpl *set_find(const tmpl_set_t *s, const char *name)
{
	size_t i, mask;

	if (!s->cap)
		return NULL;
	mask = s->cap - 1;
	for (i = name_hash(name) & mask; s->slot[i]; i = (i + 1) & mask)
		if (!strcmp(s->slot[i]->name, name))
			return s->slot[i];
	return NULL;
}

/* Store t, replacing a template of the same name. Takes t on success. */
static int set_put(tmpl_set_t *s, struct tmpl *t)
{
	struct tmpl **slot;
	size_t cap, i, j, mask;

	if ((s->count + 1) * 2 > s->cap) {
		cap = s->cap ? s->cap * 2 : 16;
		slot = calloc(cap, sizeof *slot);
		if (!slot)
			return TG_ENOMEM;
		for (j = 0; j < s->cap; j++) {
			if (!s->slot[j])
				continue;
			for (i = name_hash(s->slot[j]->name) & (cap - 1); slot[i];
			     i = (i + 1) & (cap - 1))
				;
			slot[i] = s->slot[j];
		}
		free(s->slot);
		s->slot = slot;
		s->cap = cap;
	}
	mask = s->cap - 1;
	for (i = name_hash(t->name) & mask; s->slot[i]; i = (i + 1) & mask) {
		if (!strcmp(s->slot[i]->name, t->name)) {
			tmpl_free(s->slot[i]);
			s->slot[i] = t;
			return TG_OK;
		}
	}
	s->slot[i] = t;
	s->count++;
	return TG_OK;
}

int tmpl_set_new(tmpl_set_t **out)
{
	tmpl_set_t *s = calloc(1, sizeof *s);

	if (!s)
		return TG_ENOMEM;
	*out = s;
	return TG_OK;
}

void tmpl_set_free(tmpl_set_t *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->cap; i++)
		tmpl_free(s->slot[i]);
	free(s->slot);
	free(s);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int tmpl_set_add(tmpl_set_t *s, const char *name, const char *text, size_t len, char *err,
		 size_t errlen)
{
	struct parser p;
	struct tmpl *t = NULL;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!s || !name || (!text && len)) {
		seterr(err, errlen, "tmpl_set_add: bad arguments");
		return TG_EINVAL;
	}
	memset(&p, 0, sizeof p);
	p.tname = name;
	p.s = text ? text : "";
	p.n = len;
	p.err = err;
	p.errlen = errlen;
	t = calloc(1, sizeof *t);
	if (!t || !(t->name = strdup(name))) {
		rc = TG_ENOMEM;
		goto out;
	}
	if ((rc = tokenize(&p)) || (rc = match_tags(&p)))
		goto out;
	if ((rc = build(&p, &t->root, 0, p.nt, (struct bctx){ 0, false })))
		goto out;
	if ((rc = add_text(&p, &t->root, p.pos, p.n, 0)))
		goto out;
	if ((rc = set_put(s, t)))
		goto out;
	t = NULL;
out:
	if (rc && rc != TG_EINVAL)
		seterr(err, errlen, "%s: %s", name, tg_strerror(rc));
	free(p.t);
	tmpl_free(t);
	return rc;
}

/* Shorten b to its first len bytes. */
static void shrink_to(buf_t *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

static int read_file(const char *path, buf_t *b)
{
	char chunk[16384];
	size_t n;
	FILE *f;
	int rc = TG_OK;

	f = fopen(path, "rb");
	if (!f)
		return TG_EIO;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if ((rc = buf_append(b, chunk, n)))
			break;
	if (!rc && ferror(f))
		rc = TG_EIO;
	fclose(f);
	return rc;
}

/* Load the templates in root/rel (rel is "" or ends with '/'). */
static int load_tree(tmpl_set_t *s, const char *root, buf_t *rel, int level, char *err,
		     size_t errlen)
{
	static const char ext[] = ".mustache";
	const size_t extlen = sizeof ext - 1;
	buf_t path, text;
	struct dirent *de;
	struct stat st;
	size_t rlen = rel->len, nlen;
	DIR *d = NULL;
	int rc;

	buf_init(&path, 4096); /* a file path (PATH_MAX) */
	buf_init(&text, TMPL_MAX_FILE);
	if ((rc = buf_appendf(&path, "%s/%s", root, buf_cstr(rel))))
		goto out;
	d = opendir(path.data);
	if (!d) {
		seterr(err, errlen, "cannot open directory %s: %s", path.data, strerror(errno));
		rc = TG_EIO;
		goto out;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		nlen = strlen(de->d_name);
		buf_reset(&path);
		if ((rc = buf_appendf(&path, "%s/%s%s", root, buf_cstr(rel), de->d_name)))
			goto out;
		if (stat(path.data, &st)) {
			seterr(err, errlen, "cannot stat %s: %s", path.data, strerror(errno));
			rc = TG_EIO;
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			if (level >= DIR_DEPTH_MAX) {
				seterr(err, errlen, "%s: directories nest deeper than %d",
				       path.data, DIR_DEPTH_MAX);
				rc = TG_EINVAL;
				goto out;
			}
			if ((rc = buf_appendf(rel, "%s/", de->d_name)) ||
			    (rc = load_tree(s, root, rel, level + 1, err, errlen)))
				goto out;
			shrink_to(rel, rlen);
			continue;
		}
		if (!S_ISREG(st.st_mode) || nlen <= extlen ||
		    memcmp(de->d_name + nlen - extlen, ext, extlen))
			continue;
		buf_reset(&text);
		if ((rc = read_file(path.data, &text))) {
			if (rc == TG_ETOOBIG)
				seterr(err, errlen, "%s: larger than %zu bytes", path.data,
				       TMPL_MAX_FILE);
			else
				seterr(err, errlen, "cannot read %s: %s", path.data,
				       rc == TG_EIO ? strerror(errno) : tg_strerror(rc));
			goto out;
		}
		/* The template name: rel + file name without the extension. */
		if ((rc = buf_append(rel, de->d_name, nlen - extlen)))
			goto out;
		rc = tmpl_set_add(s, rel->data, buf_cstr(&text), text.len, err, errlen);
		shrink_to(rel, rlen);
		if (rc)
			goto out;
	}
out:
	if (d)
		closedir(d);
	buf_free(&path);
	buf_free(&text);
	return rc;
}

int tmpl_set_load_dir(tmpl_set_t *s, const char *dir, char *err, size_t errlen)
{
	buf_t rel;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!s || !dir) {
		seterr(err, errlen, "tmpl_set_load_dir: bad arguments");
		return TG_EINVAL;
	}
	buf_init(&rel, 4096); /* a path below the template directory */
	rc = buf_puts(&rel, "");
	if (!rc)
		rc = load_tree(s, dir, &rel, 0, err, errlen);
	buf_free(&rel);
	return rc;
}

/* ---- renderer ---- */

struct frame {
	const cJSON *v;
	const struct frame *up;
};

/* Arguments of the parents being rendered, innermost first. */
struct args {
	const struct nodelist *blocks;
	const struct args *up;
};

struct rstate {
	const tmpl_set_t *set;
	buf_t *out;
	buf_t ind; /* indentation; the active part is ind.data[ind_from, ind.len) */
	size_t ind_from;
	bool bol;  /* no output yet on the current line */
	int depth; /* partials and parents entered */
	int nest;  /* render_nodes calls on the C stack */
};

static int put_indent(struct rstate *st)
{
	st->bol = false;
	if (st->ind.len == st->ind_from)
		return TG_OK;
	return buf_append(st->out, st->ind.data + st->ind_from, st->ind.len - st->ind_from);
}

static void ind_restore(struct rstate *st, size_t len, size_t from)
{
	shrink_to(&st->ind, len);
	st->ind_from = from;
}

/* Template text: indent every line that starts here. */
static int put_text(struct rstate *st, const char *s, size_t n)
{
	const char *nl;
	size_t k = 0, e;
	int rc;

	if (!n)
		return TG_OK;
	if (st->ind.len == st->ind_from) {
		st->bol = s[n - 1] == '\n';
		return buf_append(st->out, s, n);
	}
	while (k < n) {
		nl = memchr(s + k, '\n', n - k);
		e = nl ? (size_t)(nl - s) + 1 : n;
		if (st->bol && (rc = put_indent(st)))
			return rc;
		if ((rc = buf_append(st->out, s + k, e - k)))
			return rc;
		st->bol = s[e - 1] == '\n';
		k = e;
	}
	return TG_OK;
}

/* An interpolated value: its own newlines are not indented. */
static int put_value(struct rstate *st, const char *s, size_t n, bool escape)
{
	int rc;

	if (!n)
		return TG_OK;
	if (st->bol && (rc = put_indent(st)))
		return rc;
	return escape ? buf_append_html(st->out, s, n) : buf_append(st->out, s, n);
}

/* Shortest text that reads back as d: integers without ".0", others with
 * up to 17 significant digits, exponents without padding ("1e-7"). */
static size_t fmt_number(double d, char *b, size_t bl)
{
	char *e, *z;
	int k = 0, prec;

	if (!isfinite(d))
		return 0;
	if (d == 0) {
		b[0] = '0';
		b[1] = '\0';
		return 1;
	}
	if (d == trunc(d) && fabs(d) < 1e21) {
		k = snprintf(b, bl, "%.0f", d);
	} else {
		for (prec = 15; prec <= 17; prec++) {
			k = snprintf(b, bl, "%.*g", prec, d);
			if (strtod(b, NULL) == d)
				break;
		}
		e = strchr(b, 'e');
		if (e) {
			z = e + 1;
			if (*z == '-' || *z == '+')
				z++;
			e = z;
			while (*z == '0' && z[1])
				z++;
			memmove(e, z, strlen(z) + 1);
			k = (int)strlen(b);
		}
	}
	return k > 0 ? (size_t)k : 0;
}

static int put_json(struct rstate *st, const cJSON *v, bool escape)
{
	char num[64];

	if (!v)
		return TG_OK;
	if (cJSON_IsString(v) || cJSON_IsRaw(v))
		return v->valuestring ?
			       put_value(st, v->valuestring, strlen(v->valuestring), escape) :
			       TG_OK;
	if (cJSON_IsNumber(v))
		return put_value(st, num, fmt_number(v->valuedouble, num, sizeof num), escape);
	if (cJSON_IsTrue(v))
		return put_value(st, "true", 4, escape);
	return TG_OK;
}

static bool truthy(const cJSON *v)
{
	if (!v || cJSON_IsInvalid(v) || cJSON_IsFalse(v) || cJSON_IsNull(v))
		return false;
	if (cJSON_IsArray(v))
		return v->child != NULL;
	if (cJSON_IsString(v))
		return v->valuestring && v->valuestring[0];
	return true;
}

/* Resolve a (dotted) name: the first part against the context stack, the
 * rest inside what it found. */
static const cJSON *lookup(const struct frame *f, const struct node *nd)
{
	const cJSON *v = NULL;
	const char *part = nd->path;
	unsigned k;

	if (!nd->npath)
		return f ? f->v : NULL;
	for (; f; f = f->up)
		if (cJSON_IsObject(f->v) && (v = cJSON_GetObjectItemCaseSensitive(f->v, part)))
			break;
	for (k = 1; v && k < nd->npath; k++) {
		part += strlen(part) + 1;
		v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, part) : NULL;
	}
	return v;
}

/* The outermost argument named `name`, or NULL. */
static const struct nodelist *find_arg(const struct args *a, const char *name)
{
	const struct nodelist *found = NULL;
	size_t i;

	for (; a; a = a->up)
		for (i = 0; i < a->blocks->n; i++)
			if (!strcmp(a->blocks->v[i].name, name))
				found = &a->blocks->v[i].kids;
	return found;
}

/* Add a standalone tag's indentation for what it renders. */
static int push_indent(struct rstate *st, const struct node *nd)
{
	int rc;

	/* Not at the start of a line (this template was included inline): the
	 * indentation still belongs before the first line. */
	if (!st->bol && (rc = buf_append(st->out, nd->indent, nd->indent_len)))
		return rc;
	return buf_append(&st->ind, nd->indent, nd->indent_len);
}

static int render_nodes(struct rstate *st, const struct nodelist *l, const struct frame *cx,
			const struct args *ar);

static int render_include(struct rstate *st, const struct node *nd, const struct frame *cx,
			  const struct args *ar)
{
	const struct tmpl *t = set_find(st->set, nd->name);
	size_t len = st->ind.len, from = st->ind_from;
	struct args a;
	int rc;

	if (!t)
		return TG_OK;
	if (st->depth >= TMPL_MAX_DEPTH)
		return TG_EINVAL;
	if (nd->type == N_PARENT) {
		a.blocks = &nd->kids;
		a.up = ar;
		ar = &a;
	}
	if (nd->standalone) {
		if ((rc = push_indent(st, nd)))
			goto out;
	} else {
		/* Inline: the current line keeps its indentation, the included
		 * template's own lines get none. */
		if (st->bol && st->ind.len > st->ind_from && (rc = put_indent(st)))
			goto out;
		st->ind_from = st->ind.len;
	}
	st->depth++;
	rc = render_nodes(st, &t->root, cx, ar);
	st->depth--;
out:
	ind_restore(st, len, from);
	return rc;
}

static int render_section(struct rstate *st, const struct node *nd, const struct frame *cx,
			  const struct args *ar)
{
	const cJSON *v = lookup(cx, nd), *it;
	struct frame f;
	int rc = TG_OK;

	if (nd->type == N_INVERTED)
		return truthy(v) ? TG_OK : render_nodes(st, &nd->kids, cx, ar);
	if (!truthy(v))
		return TG_OK;
	f.up = cx;
	if (!cJSON_IsArray(v)) {
		f.v = v;
		return render_nodes(st, &nd->kids, &f, ar);
	}
	for (it = v->child; it && !rc; it = it->next) {
		f.v = it;
		rc = render_nodes(st, &nd->kids, &f, ar);
	}
	return rc;
}

static int render_block(struct rstate *st, const struct node *nd, const struct frame *cx,
			const struct args *ar)
{
	const struct nodelist *body = find_arg(ar, nd->name);
	size_t len = st->ind.len, from = st->ind_from;
	int rc = TG_OK;

	if (nd->standalone)
		rc = push_indent(st, nd);
	if (!rc)
		rc = render_nodes(st, body ? body : &nd->kids, cx, ar);
	ind_restore(st, len, from);
	return rc;
}

static int render_nodes(struct rstate *st, const struct nodelist *l, const struct frame *cx,
			const struct args *ar)
{
	const struct node *nd;
	size_t i;
	int rc = TG_OK;

	if (++st->nest > RENDER_NEST_MAX) {
		rc = TG_EINVAL;
		goto out;
	}
	for (i = 0; i < l->n && !rc; i++) {
		nd = &l->v[i];
		switch (nd->type) {
		case N_TEXT:
			rc = put_text(st, nd->text.data, nd->text.len);
			break;
		case N_VAR:
		case N_RAW:
			rc = put_json(st, lookup(cx, nd), nd->type == N_VAR);
			break;
		case N_SECTION:
		case N_INVERTED:
			rc = render_section(st, nd, cx, ar);
			break;
		case N_PARTIAL:
		case N_PARENT:
			rc = render_include(st, nd, cx, ar);
			break;
		case N_BLOCK:
			rc = render_block(st, nd, cx, ar);
			break;
		}
	}
out:
	st->nest--;
	return rc;
}

int tmpl_render(const tmpl_set_t *s, const char *name, const cJSON *data, buf_t *out)
{
	struct frame root = { data, NULL };
	const struct tmpl *t;
	struct rstate st;
	size_t mark;
	int rc;

	if (!s || !name || !out)
		return TG_EINVAL;
	t = set_find(s, name);
	if (!t)
		return TG_ENOTFOUND;
	mark = out->len;
	memset(&st, 0, sizeof st);
	st.set = s;
	st.out = out;
	st.bol = true;
	buf_init(&st.ind, INDENT_MAX);
	rc = render_nodes(&st, &t->root, data ? &root : NULL, NULL);
	buf_free(&st.ind);
	if (rc)
		shrink_to(out, mark);
	return rc;
}
