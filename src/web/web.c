/* web.c - dashboard framework: sessions, CSRF, flash, layout; see web.h. */
#include "web/web.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/tokens.h"
#include "store/db.h"
#include "tmpl/tmpl.h"

static tmpl_set_t *templates;
static unsigned char csrf_key[32];
static const tg_config_t *config; /* the caller's, from web_init on */

/* One request is served by one thread from start to end, so the session of
 * the request in flight can live in thread-local storage: nothing to free. */
static __thread struct web_session tls_session;
/* Set while this thread must not render an error page in the layout (a page
 * just failed to render): the error hook then declines and the plain page is
 * sent. Per thread, so the hook itself is set once at init and never changed
 * while serving. */
static __thread int tls_plain_errors;

static int render_error_page(tg_req_t *r, int status, const char *title, const char *message);

int web_init(const tg_config_t *cfg, const tg_secrets_t *secrets, char *err, size_t errlen)
{
	char dir[1024];
	int rc;

	config = cfg;

	/* A key of its own for CSRF, derived from the pepper. */
	crypto_generichash(csrf_key, sizeof(csrf_key), (const unsigned char *)"tollgate-csrf-key",
			   17, secrets->pepper, sizeof(secrets->pepper));
	snprintf(dir, sizeof(dir), "%s/templates", cfg->assets_dir);
	if ((rc = tmpl_set_new(&templates))) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = tmpl_set_load_dir(templates, dir, err, errlen)))
		return rc;
	resp_set_html_error_renderer(render_error_page);
	return TG_OK;
}

void web_shutdown(void)
{
	tmpl_set_free(templates);
	templates = NULL;
	sodium_memzero(csrf_key, sizeof(csrf_key));
	config = NULL;
}

const tg_config_t *web_config(void)
{
	return config;
}

int web_plain_errors_begin(void)
{
	int prev = tls_plain_errors;

	tls_plain_errors = 1;
	return prev;
}

void web_plain_errors_end(int prev)
{
	tls_plain_errors = prev;
}

int web_plain_errors(void)
{
	return tls_plain_errors;
}

/* ------------------------------------------------------------- cookies */

void web_cookie_name(const tg_req_t *r, const char *base, char *out, size_t n)
{
	snprintf(out, n, "%s%s", req_is_tls(r) ? "__Host-" : "", base);
}

void web_set_cookie(tg_req_t *r, const char *base, const char *value, int max_age)
{
	char name[64], line[512];

	web_cookie_name(r, base, name, sizeof(name));
	if (max_age >= 0)
		snprintf(line, sizeof(line), "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
			 name, value, max_age, req_is_tls(r) ? "; Secure" : "");
	else
		snprintf(line, sizeof(line), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", name, value,
			 req_is_tls(r) ? "; Secure" : "");
	resp_header(r, "Set-Cookie", line);
}

static char *cookie(const tg_req_t *r, const char *base)
{
	char name[64];

	web_cookie_name(r, base, name, sizeof(name));
	return req_cookie(r, name);
}

/* ---------------------------------------------------------------- flash */

void web_urlencode(buf_t *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.')
			buf_putc(b, (char)c);
		else
			buf_appendf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}

int web_redirect_flash(tg_req_t *r, const char *location, const char *kind, const char *msg)
{
	buf_t v;

	buf_init(&v, 1024);
	buf_putc(&v, kind[0]);
	buf_putc(&v, '.');
	web_urlencode(&v, msg);
	if (v.len < 1000)
		web_set_cookie(r, "tg_flash", buf_cstr(&v), 60);
	buf_free(&v);
	return resp_redirect(r, location);
}

/* Move a pending flash message ("k.<urlencoded text>") into the page data
 * and clear the cookie. */
static void take_flash(tg_req_t *r, cJSON *data)
{
	char *v = cookie(r, "tg_flash");
	char *msg = NULL;
	buf_t q;
	cJSON *f;

	if (!v)
		return;
	web_set_cookie(r, "tg_flash", "", 0);
	buf_init(&q, 2048);
	if (strlen(v) > 2 && v[1] == '.' && !buf_puts(&q, "m=") && !buf_puts(&q, v + 2))
		msg = req_form_get(q.data, q.len, "m");
	if (msg && *msg && !cJSON_GetObjectItem(data, "flash")) {
		f = cJSON_AddObjectToObject(data, "flash");
		cJSON_AddStringToObject(f, "kind",
					v[0] == 'e' ? "error" :
					v[0] == 'w' ? "warn" :
						      "ok");
		cJSON_AddStringToObject(f, "message", msg);
	}
	buf_free(&q);
	free(msg);
	free(v);
}

/* ------------------------------------------------------------------ auth */

static int origin_ok(const tg_req_t *r)
{
	const char *origin = req_header(r, "Origin");
	const char *host = req_header(r, "Host");
	char want[600];

	if (!origin)
		return 1; /* older browsers; the CSRF token still protects us */
	if (!host)
		return 0;
	snprintf(want, sizeof(want), "%s://%s", req_is_tls(r) ? "https" : "http", host);
	return strcmp(origin, want) == 0;
}

static int forbid(tg_req_t *r, const char *msg)
{
	resp_error(r, 403, "permission_denied", "csrf", msg);
	return TG_EPERM;
}

/* Read the form body of a POST, answering 413/408/400 itself. */
static int read_form(tg_req_t *r)
{
	int rc = req_read_body(r);

	if (rc)
		req_body_fail(r, rc);
	return rc;
}

static int check_csrf_field(tg_req_t *r, const unsigned char hash[32])
{
	char *given;
	int ok;

	if (!origin_ok(r))
		return forbid(r, "This form was submitted from another site and was refused.");
	if (read_form(r))
		return TG_EINVAL;
	given = req_post(r, "csrf");
	ok = given && tokens_csrf_verify(csrf_key, hash, given, strlen(given));
	free(given);
	if (!ok)
		return forbid(
			r, "The form's security token is missing or expired. Go back, reload the "
			   "page and try again.");
	return TG_OK;
}

int web_public_csrf_check(tg_req_t *r)
{
	unsigned char h[32];
	char *pre = cookie(r, "tg_pre");
	int rc;

	if (!pre) {
		/* Still read the form so its size limit is enforced first. */
		if (!origin_ok(r))
			return forbid(r,
				      "This form was submitted from another site and was refused.");
		if (read_form(r))
			return TG_EINVAL;
		return forbid(r, "Your browser did not send the form's security cookie. Enable "
				 "cookies, reload the page and try again.");
	}
	tokens_hash(pre, strlen(pre), h);
	free(pre);
	rc = check_csrf_field(r, h);
	return rc;
}

/* Token for the public forms: a pre-session cookie, set when missing. */
static void public_csrf(tg_req_t *r, char out[44])
{
	unsigned char h[32];
	char tok[44];
	char *pre = cookie(r, "tg_pre");

	if (!pre || strlen(pre) != TOKENS_LEN) {
		free(pre);
		if (tokens_random(tok, sizeof(tok))) {
			out[0] = '\0';
			return;
		}
		web_set_cookie(r, "tg_pre", tok, -1);
		pre = strdup(tok);
		if (!pre) {
			out[0] = '\0';
			return;
		}
	}
	tokens_hash(pre, strlen(pre), h);
	tokens_csrf(csrf_key, h, out);
	free(pre);
}

enum role web_org_role(const tg_req_t *r, int64_t org_id)
{
	if (!r->session || org_id <= 0)
		return ROLE_NONE;
	if (r->session->user.is_admin) {
		struct org o;

		return org_get(org_id, &o) == TG_OK ? ROLE_OWNER : ROLE_NONE;
	}
	return membership_role(org_id, r->session->user.id);
}

static void pick_org(tg_req_t *r, struct web_session *s)
{
	int64_t id = s->row.org_id;
	enum role role;

	s->org.id = 0;
	s->role = ROLE_NONE;
	if (id > 0) {
		role = web_org_role(r, id);
		if (role != ROLE_NONE && org_get(id, &s->org) == TG_OK) {
			s->role = role;
			return;
		}
	}
	id = membership_first_org(s->user.id);
	if (!id && s->user.is_admin) {
		tg_stmt *st = db_stmt("SELECT id FROM orgs ORDER BY name LIMIT 1");

		if (st && db_step(st) == DB_ROW)
			id = db_col_int64(st, 0);
		db_done(st);
	}
	if (id && org_get(id, &s->org) == TG_OK) {
		s->role = web_org_role(r, id);
		session_set_org(s->row.id, id);
	}
}

int web_authenticate(tg_req_t *r, int admin_only)
{
	struct web_session *s = &tls_session;
	const tg_config_t *cfg = config;
	char *tok = cookie(r, "tg_session");
	int rc;

	memset(s, 0, sizeof(*s));
	rc = tok ? session_lookup(tok, cfg->session_idle_s, &s->row) : TG_ENOTFOUND;
	free(tok);
	if (rc == TG_OK && (user_get(s->row.user_id, &s->user) != TG_OK || s->user.disabled)) {
		session_delete(s->row.id);
		rc = TG_ENOTFOUND;
	}
	if (rc != TG_OK) {
		if (strcmp(r->method, "GET") == 0 && strlen(r->path) < 200 &&
		    strcmp(r->path, "/")) {
			buf_t loc;

			buf_init(&loc, 1024);
			buf_puts(&loc, "/login?next=");
			web_urlencode(&loc, r->path);
			resp_redirect(r, buf_cstr(&loc));
			buf_free(&loc);
		} else {
			resp_redirect(r, "/login");
		}
		return TG_EPERM;
	}
	r->session = s;
	tokens_csrf(csrf_key, s->row.token_hash, s->csrf);
	if (strcmp(r->method, "POST") == 0 && (rc = check_csrf_field(r, s->row.token_hash)))
		return rc;
	if (admin_only && !s->user.is_admin) {
		web_not_found(r);
		return TG_EPERM;
	}
	pick_org(r, s);
	if (s->user.must_change_password && strncmp(r->path, "/account", 8) != 0 &&
	    strcmp(r->path, "/logout") != 0) {
		web_redirect_flash(r, "/account", "warn",
				   "Choose a new password before you continue.");
		return TG_EPERM;
	}
	return TG_OK;
}

/* ------------------------------------------------------------- helpers */

int64_t web_parse_id(const char *s)
{
	char *end;
	long long v;

	if (!s || !*s || !isdigit((unsigned char)*s) || strlen(s) > 18)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return 0;
	return v;
}

int64_t web_param_id(const tg_req_t *r, int i)
{
	return i < r->nparams ? web_parse_id(r->params[i]) : 0;
}

struct audit_actor web_actor(const tg_req_t *r)
{
	struct audit_actor a = { 0, "anonymous", req_ip(r) };

	if (r->session) {
		a.user_id = r->session->user.id;
		a.label = r->session->user.email;
	}
	return a;
}

char *web_trim(char *s)
{
	size_t n;
	char *p = s;

	if (!s)
		return NULL;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (p != s)
		memmove(s, p, strlen(p) + 1);
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

void web_flash_now(cJSON *d, const char *kind, const char *msg)
{
	cJSON *f;

	if (!msg)
		return;
	cJSON_DeleteItemFromObject(d, "flash");
	f = cJSON_AddObjectToObject(d, "flash");
	cJSON_AddStringToObject(f, "kind", kind);
	cJSON_AddStringToObject(f, "message", msg);
}

int web_parse_day(const char *s, int64_t *t)
{
	int64_t v;

	/* Parse into a local: time_parse may write before it rejects a date. */
	if (!s || strlen(s) != 10 || time_parse(s, &v) != TG_OK)
		return TG_EINVAL;
	*t = v;
	return TG_OK;
}

int web_day_range(const char *from, const char *to, char from_txt[24], char to_txt[24],
		  int64_t *from_t, int64_t *to_t, const char **error)
{
	static const char bad[] = "The dates must be real days written YYYY-MM-DD, for example "
				  "2026-01-31.";
	int given = 0;

	if (from && *from) {
		snprintf(from_txt, 24, "%s", from);
		if (web_parse_day(from, from_t) == TG_OK) {
			given |= 1;
		} else {
			*error = bad;
			from_txt[0] = '\0';
		}
	}
	if (to && *to) {
		snprintf(to_txt, 24, "%s", to);
		if (web_parse_day(to, to_t) == TG_OK) {
			*to_t += 86400; /* the whole "to" day is included */
			given |= 2;
		} else {
			*error = bad;
			to_txt[0] = '\0';
		}
	}
	return given;
}

void web_add_time(cJSON *obj, const char *key, int64_t t)
{
	char s[20];

	if (t <= 0) {
		cJSON_AddStringToObject(obj, key, "");
		return;
	}
	time_format(t, s);
	s[16] = '\0'; /* minutes are enough on screen */
	cJSON_AddStringToObject(obj, key, s);
}

/* --------------------------------------------------------- CSV downloads */

void web_csv_attachment(tg_req_t *r, const char *filename)
{
	char disp[160];

	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", filename);
	resp_header(r, "Content-Disposition", disp);
}

void web_csv_init(buf_t *b)
{
	buf_init(b, WEB_CSV_FLUSH * 2);
}

int web_csv_flush(tg_req_t *r, buf_t *b)
{
	int rc;

	if (b->len < WEB_CSV_FLUSH)
		return TG_OK;
	rc = resp_stream_write(r, b->data, b->len);
	buf_reset(b);
	return rc;
}

int web_csv_end(tg_req_t *r, buf_t *b, int rc)
{
	if (rc == TG_OK)
		rc = resp_stream_end(r, b->data, b->len);
	buf_free(b);
	return rc;
}

/* ------------------------------------------------------------ rendering */

enum nav_need { NAV_ANY, NAV_ORG_ADMIN, NAV_INSTANCE_ADMIN };

static const struct nav_item {
	const char *href;
	const char *label;
	enum nav_need need;
} nav_items[] = {
	{ "/", "Overview", NAV_ANY },
	{ "/keys", "API keys", NAV_ANY },
	{ "/credits", "Credits", NAV_ANY },
	{ "/usage", "Usage", NAV_ANY },
	{ "/requests", "Requests", NAV_ANY },
	{ "/pricing", "Pricing", NAV_ANY },
	{ "/providers", "Providers", NAV_INSTANCE_ADMIN },
	{ "/orgs", "Organizations", NAV_ANY },
	{ "/users", "Users", NAV_INSTANCE_ADMIN },
	{ "/alerts", "Alerts", NAV_ORG_ADMIN },
	{ "/audit", "Audit log", NAV_ORG_ADMIN },
};

static void add_layout(tg_req_t *r, cJSON *data)
{
	struct web_session *s = r->session;
	cJSON *app, *user, *nav, *orgs;
	size_t i;

	app = cJSON_AddObjectToObject(data, "app");
	cJSON_AddStringToObject(app, "name", "Tollgate");
	cJSON_AddStringToObject(app, "version", TG_VERSION);
	take_flash(r, data);
	if (!s) {
		char pre[44];

		if (!cJSON_GetObjectItem(data, "csrf")) {
			public_csrf(r, pre);
			cJSON_AddStringToObject(data, "csrf", pre);
		}
		return;
	}
	cJSON_AddStringToObject(data, "csrf", s->csrf);
	user = cJSON_AddObjectToObject(data, "user");
	cJSON_AddStringToObject(user, "name", s->user.name[0] ? s->user.name : s->user.email);
	cJSON_AddStringToObject(user, "email", s->user.email);
	cJSON_AddBoolToObject(user, "is_admin", s->user.is_admin);
	nav = cJSON_AddArrayToObject(data, "nav");
	for (i = 0; i < TG_ARRAY_LEN(nav_items); i++) {
		const struct nav_item *n = &nav_items[i];
		size_t hl = strlen(n->href);
		cJSON *item;
		int active;

		if (n->need == NAV_INSTANCE_ADMIN && !s->user.is_admin)
			continue;
		if (n->need == NAV_ORG_ADMIN && s->role < ROLE_ADMIN && !s->user.is_admin)
			continue;
		active = hl == 1 ? strcmp(r->path, "/") == 0 :
				   strncmp(r->path, n->href, hl) == 0 &&
					   (r->path[hl] == '\0' || r->path[hl] == '/');
		item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "href", n->href);
		cJSON_AddStringToObject(item, "label", n->label);
		cJSON_AddBoolToObject(item, "active", active);
		cJSON_AddItemToArray(nav, item);
	}
	if (s->org.id) {
		cJSON *o = cJSON_AddObjectToObject(data, "current_org");

		cJSON_AddNumberToObject(o, "id", (double)s->org.id);
		cJSON_AddStringToObject(o, "name", s->org.name);
		cJSON_AddStringToObject(o, "role", role_name(s->role));
	}
	web_alerts_layout(r, data); /* budget alert banner (web/page_alerts.c) */
	/* The org switcher lists the orgs the user belongs to. */
	orgs = cJSON_CreateArray();
	{
		tg_stmt *st = db_stmt("SELECT o.id, o.name FROM memberships m JOIN orgs o"
				      " ON o.id = m.org_id WHERE m.user_id = :user"
				      " ORDER BY o.name LIMIT 200");

		if (st && !db_bind_int64(st, ":user", s->user.id)) {
			while (db_step(st) == DB_ROW) {
				cJSON *o = cJSON_CreateObject();
				int64_t id = db_col_int64(st, 0);

				cJSON_AddNumberToObject(o, "id", (double)id);
				cJSON_AddStringToObject(o, "name", db_col_text(st, 1));
				cJSON_AddBoolToObject(o, "selected", id == s->org.id);
				cJSON_AddItemToArray(orgs, o);
			}
		}
		db_done(st);
	}
	cJSON_AddBoolToObject(data, "org_switcher", cJSON_GetArraySize(orgs) > 1);
	cJSON_AddItemToObject(data, "org_choices", orgs);
}

int web_render(tg_req_t *r, int status, const char *page, cJSON *data)
{
	buf_t out;
	int rc, prev;

	if (!data)
		return resp_error(r, 500, "server_error", NULL, "Out of memory.");
	add_layout(r, data);
	buf_init(&out, BUF_MAX_LARGE); /* a whole page */
	rc = tmpl_render(templates, page, data, &out);
	cJSON_Delete(data);
	if (rc) {
		log_error("render %s failed: %s", page, tg_strerror(rc));
		buf_free(&out);
		prev = web_plain_errors_begin(); /* avoid recursing into a broken layout */
		rc = resp_error(r, 500, "server_error", NULL, "The page could not be rendered.");
		web_plain_errors_end(prev);
		return rc;
	}
	rc = resp_html(r, status, &out);
	buf_free(&out);
	return rc;
}

static int render_error_page(tg_req_t *r, int status, const char *title, const char *message)
{
	cJSON *d = cJSON_CreateObject();
	char code[8];

	if (web_plain_errors() || !d || !templates) {
		cJSON_Delete(d);
		return -1;
	}
	snprintf(code, sizeof(code), "%d", status);
	cJSON_AddStringToObject(d, "status", code);
	cJSON_AddStringToObject(d, "title", title);
	cJSON_AddStringToObject(d, "message", message);
	return web_render(r, status, "error", d) == TG_OK ? 0 : 0;
}

int web_not_found(tg_req_t *r)
{
	return resp_error(r, 404, "invalid_request_error", "not_found",
			  "There is no page at this address, or you do not have access to it.");
}
