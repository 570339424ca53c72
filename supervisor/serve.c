/*
 * serve.c - the dashboard's HTTP server: binding, the token, the request
 * life cycle in libmicrohttpd, the checks every request passes (Host,
 * token, method, CSRF, body), routing, the store pool and the embedded UI.
 * The handlers live in serve_api.c (reads), serve_act.c (actions) and
 * serve_prom.c (/metrics); serve.h and docs/serve.md say the rules.
 */
#include "cli.h"
#include "fsutil.h"
#include "serve_int.h"
#include "tend.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- routes ------------------------------------------------------------- */

enum { R_WRITE = 1 }; /* changes something: POST, CSRF, not read-only */

typedef struct route {
	const char *method;
	const char *pattern;  /* '#' stands for one path segment of digits */
	srv__handler fn;
	unsigned flags;
} route;

static const route routes[] = {
	{"GET", "/api/session", srv__api_session, 0},
	{"GET", "/api/runs", srv__api_runs, 0},
	{"GET", "/api/run", srv__api_run, 0},
	{"GET", "/api/series", srv__api_series, 0},
	{"GET", "/api/moe", srv__api_moe, 0},
	{"GET", "/api/incidents", srv__api_incidents, 0},
	{"GET", "/api/incidents/#", srv__api_incident, 0},
	{"GET", "/api/proposals", srv__api_proposals, 0},
	{"GET", "/api/proposals/#", srv__api_proposal, 0},
	{"POST", "/api/proposals/#/approve", srv__api_approve, R_WRITE},
	{"POST", "/api/proposals/#/reject", srv__api_reject, R_WRITE},
	{"GET", "/api/audit", srv__api_audit, 0},
	{"GET", "/api/audit/verify", srv__api_verify, 0},
	{"GET", "/metrics", srv__prometheus, 0},
};

/* Matches path against pattern; a '#' segment must be 1..18 digits and
 * goes into *id. */
static bool match(const char *pattern, const char *path, int64_t *id)
{
	while (*pattern && *path) {
		if (*pattern == '#') {
			const char *start = path;
			int64_t v = 0;
			while (isdigit((unsigned char)*path) && path - start < 18)
				v = v * 10 + (*path++ - '0');
			if (path == start || isdigit((unsigned char)*path))
				return false;
			*id = v;
			pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
}

/* The route for path: *allowed lists its methods when none matches. */
static const route *route_find(const char *method, const char *path,
			       int64_t *id, char *allowed, size_t cap)
{
	allowed[0] = '\0';
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!match(routes[i].pattern, path, id))
			continue;
		if (!strcmp(routes[i].method, method) ||
		    (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET")))
			return &routes[i];
		snprintf(allowed + strlen(allowed), cap - strlen(allowed), "%s%s",
			 allowed[0] ? ", " : "", routes[i].method);
	}
	return NULL;
}

const srv__asset *srv__asset_find(const char *path)
{
	if (!strcmp(path, "/"))
		path = "/index.html";
	for (size_t i = 0; i < srv__nassets; i++)
		if (!strcmp(srv__assets[i].path, path))
			return &srv__assets[i];
	return NULL;
}

/* ---- request helpers ---------------------------------------------------- */

int srv__fail(srv__req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jbuf_reset(&r->out);
	r->ctype = NULL;
	jbuf_obj_open(&r->out);
	jbuf_key(&r->out, "error");
	jbuf_str(&r->out, msg);
	jbuf_key(&r->out, "status");
	jbuf_int(&r->out, status);
	jbuf_obj_close(&r->out);
	return status;
}

const char *srv__arg(srv__req *r, const char *key)
{
	return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, key);
}

int srv__arg_int(srv__req *r, const char *key, int64_t min, int64_t max,
		 int64_t *out)
{
	const char *v = srv__arg(r, key);
	char *end = NULL;
	if (!v)
		return 0;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max)
		return srv__fail(r, 400, "query argument %s: expected an integer "
				 "in %lld..%lld, got \"%.40s\"", key, (long long)min,
				 (long long)max, v);
	*out = n;
	return 0;
}

int srv__arg_run(srv__req *r, store *st, store_run **out)
{
	const char *name = srv__arg(r, "run");
	*out = NULL;
	if (!name || !*name)
		return srv__fail(r, 400, "query argument run: missing (the run's name)");
	int rc = store_run_get_by_name(st, out, name);
	if (rc == TEND_ENOTFOUND)
		return srv__fail(r, 404, "no run named '%.200s'", name);
	if (rc < 0)
		return srv__fail(r, 500, "%s", tend_error_last());
	return 0;
}

/* ---- the store pool ----------------------------------------------------- */

static int store_get(srv *s, store **out)
{
	*out = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->npool > 0)
		*out = s->pool[--s->npool];
	pthread_mutex_unlock(&s->mu);
	if (*out)
		return 0;
	return store_open(out, s->db, STORE_READONLY);
}

static void store_put(srv *s, store *st)
{
	pthread_mutex_lock(&s->mu);
	if (s->npool < SRV__POOL) {
		s->pool[s->npool++] = st;
		st = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	store_close(st);
}

/* ---- checks ------------------------------------------------------------- */

static const char *header(srv__req *r, const char *name)
{
	return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

/* Constant-time comparison, so the token cannot be guessed byte by byte. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* On loopback, the Host header must name this server: a page on another
 * site cannot then reach us through DNS rebinding. */
static int check_host(srv__req *r)
{
	const char *h = header(r, "Host");
	char want[3][160];
	if (!r->s->loopback || !h)
		return 0;
	snprintf(want[0], sizeof want[0], "127.0.0.1:%d", r->s->port);
	snprintf(want[1], sizeof want[1], "localhost:%d", r->s->port);
	snprintf(want[2], sizeof want[2], "[::1]:%d", r->s->port);
	for (int i = 0; i < 3; i++)
		if (!strcasecmp(h, want[i]))
			return 0;
	char self[160];
	bool v6 = strchr(r->s->host, ':') != NULL;
	snprintf(self, sizeof self, v6 ? "[%s]:%d" : "%s:%d", r->s->host, r->s->port);
	if (!strcasecmp(h, self))
		return 0;
	return srv__fail(r, 403, "Host '%.100s' is not this server (%s): "
			 "requests through other names are refused", h, self);
}

static int check_token(srv__req *r)
{
	const char *a = header(r, "Authorization");
	if (!r->s->need_token)
		return 0;
	if (!a || strncasecmp(a, "Bearer ", 7) != 0)
		return srv__fail(r, 401, "missing token: send 'Authorization: "
				 "Bearer TOKEN' with the token from %s",
				 r->s->token_path);
	if (!same_secret(a + 7, r->s->token))
		return srv__fail(r, 401, "wrong token: use the one in %s",
				 r->s->token_path);
	return 0;
}

/* A write must come from our own page: the CSRF value it read from
 * /api/session, a same-origin Origin when the browser sends one, and a
 * JSON body (which a cross-site form cannot send without a preflight). */
static int check_write(srv__req *r)
{
	const char *origin = header(r, "Origin"), *site = header(r, "Sec-Fetch-Site");
	const char *host = header(r, "Host"), *csrf = header(r, "X-Tend-CSRF");
	const char *ct = header(r, "Content-Type");
	char self[200];

	if (r->s->read_only)
		return srv__fail(r, 403, "this server is read-only: restart "
				 "`tend serve` with --writable, or set serve.read_only: false");
	snprintf(self, sizeof self, "http://%s", host ? host : "");
	if (origin && strcmp(origin, self) != 0)
		return srv__fail(r, 403, "cross-site request refused: Origin "
				 "'%.100s' is not %s", origin, self);
	if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return srv__fail(r, 403, "cross-site request refused: "
				 "Sec-Fetch-Site is '%.40s'", site);
	if (!csrf || !same_secret(csrf, r->s->csrf))
		return srv__fail(r, 403, "%s X-Tend-CSRF header: read it from "
				 "GET /api/session", csrf ? "wrong" : "missing");
	if (!ct || strncasecmp(ct, "application/json", 16) != 0)
		return srv__fail(r, 415, "Content-Type must be application/json");
	if (r->too_big)
		return srv__fail(r, 413, "request body over %d bytes", SRV__MAX_BODY);
	return 0;
}

/* ---- answering ---------------------------------------------------------- */

static void common_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Content-Security-Policy",
		"default-src 'self'; img-src 'self' data:; "
		"style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
}

static enum MHD_Result send_buf(srv__req *r, int status, const char *ctype,
				const void *data, size_t len, bool copy,
				const char *cache)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len,
		(void *)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	common_headers(resp);
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", cache);
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"tend\"");
	enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ok;
}

static enum MHD_Result send_out(srv__req *r, int status)
{
	size_t len = 0;
	const char *text;
	if (r->out.err)
		status = srv__fail(r, 500, "out of memory building the answer");
	text = jbuf_cstr(&r->out, &len);
	return send_buf(r, status, r->ctype ? r->ctype : "application/json",
			text, len, true, "no-store");
}

static enum MHD_Result send_asset(srv__req *r)
{
	const srv__asset *a = srv__asset_find(r->path);
	if (!a) {
		static const char nf[] = "not found\n";
		return send_buf(r, 404, "text/plain; charset=utf-8", nf,
				sizeof nf - 1, false, "no-store");
	}
	return send_buf(r, 200, a->ctype, a->data, a->len, false, "no-cache");
}

/* Runs the checks and the handler; returns the status (out is written). */
static int dispatch(srv__req *r)
{
	char allowed[64];
	store *st = NULL;
	int rc;
	const route *rt = route_find(r->method, r->path, &r->id, allowed,
				     sizeof allowed);
	if ((rc = check_token(r)) != 0)
		return rc;
	if (!rt && allowed[0])
		return srv__fail(r, 405, "%s is not allowed on %s (allowed: %s)",
				 r->method, r->path, allowed);
	if (!rt)
		return srv__fail(r, 404, "no such endpoint: %.200s", r->path);
	if ((rt->flags & R_WRITE) && (rc = check_write(r)) != 0)
		return rc;
	if (store_get(r->s, &st) < 0)
		return srv__fail(r, 503, "the store cannot be opened: %s",
				 tend_error_last());
	rc = rt->fn(r, st);
	store_put(r->s, st);
	return rc;
}

static enum MHD_Result respond(srv__req *r)
{
	int rc = check_host(r);
	if (rc)
		return send_out(r, rc);
	bool api = !strncmp(r->path, "/api/", 5) || !strcmp(r->path, "/api") ||
		   !strcmp(r->path, "/metrics");
	if (!api) {
		if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
			return send_out(r, srv__fail(r, 405, "%s is not allowed "
				"on %s (allowed: GET)", r->method, r->path));
		return send_asset(r);
	}
	return send_out(r, dispatch(r));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *data_len, void **ctx)
{
	srv__req *r = *ctx;
	(void)version;
	if (!r) {
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		r->s = cls;
		r->c = c;
		r->method = method;
		r->path = url;
		jbuf_init(&r->out);
		*ctx = r;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     "Content-Length");
		/* refuse a huge body before it is read */
		if (cl && strtoull(cl, NULL, 10) > SRV__MAX_BODY)
			return send_out(r, srv__fail(r, 413, "request body over "
						     "%d bytes", SRV__MAX_BODY));
		return MHD_YES;
	}
	if (*data_len) {
		if (!r->too_big && r->len + *data_len <= SRV__MAX_BODY) {
			char *nb = realloc(r->body, r->len + *data_len + 1);
			if (!nb)
				return MHD_NO;
			memcpy(nb + r->len, data, *data_len);
			r->body = nb;
			r->len += *data_len;
			nb[r->len] = '\0';
		} else {
			r->too_big = true;
		}
		*data_len = 0;
		return MHD_YES;
	}
	return respond(r);
}

static void on_done(void *cls, struct MHD_Connection *c, void **ctx,
		    enum MHD_RequestTerminationCode why)
{
	srv__req *r = *ctx;
	(void)cls, (void)c, (void)why;
	if (!r)
		return;
	jbuf_free(&r->out);
	free(r->body);
	free(r);
	*ctx = NULL;
}

/* ---- starting ----------------------------------------------------------- */

bool srv_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static int random_hex(char *out, size_t bytes)
{
	unsigned char raw[64];
	if (bytes > sizeof raw || getrandom(raw, bytes, 0) != (ssize_t)bytes)
		return tend_error_os("getrandom");
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", raw[i]);
	return 0;
}

/* Reads the token file, or creates it (0600) with a new random token. */
static int load_token(srv *s)
{
	struct stat sb;
	char *text = NULL;
	int rc;
	if (stat(s->token_path, &sb) != 0) {
		if (errno != ENOENT)
			return tend_error_os("token file %s", s->token_path);
		if ((rc = random_hex(s->token, 32)) < 0)
			return rc;
		return fsu_write_atomic(s->token_path, s->token, 64, 0600);
	}
	if (sb.st_mode & 077)
		return tend_error_set(TEND_EINVAL, "token file %s is readable by "
				      "others (mode %03o): chmod 600 %s", s->token_path,
				      (unsigned)(sb.st_mode & 0777), s->token_path);
	if ((rc = fsu_read_file(&text, NULL, s->token_path, 4096)) < 0)
		return rc;
	size_t n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		text[--n] = '\0';
	if (n < 16 || n >= sizeof s->token || strpbrk(text, " \t\r\n")) {
		free(text);
		return tend_error_set(TEND_EINVAL, "token file %s: expected one "
				      "line of 16..%zu characters", s->token_path,
				      sizeof s->token - 1);
	}
	memcpy(s->token, text, n + 1);
	free(text);
	return 0;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into s->host and *port. */
static int parse_listen(srv *s, const char *listen, int *port)
{
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hl;
	char *end;
	if (!colon)
		return tend_error_set(TEND_EINVAL, "listen address '%s': expected "
				      "HOST:PORT", listen);
	hl = (size_t)(colon - listen);
	if (*h == '[') {
		if (hl < 2 || listen[hl - 1] != ']')
			return tend_error_set(TEND_EINVAL, "listen address '%s': "
					      "expected [IPV6]:PORT", listen);
		h++;
		hl -= 2;
	}
	long p = strtol(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof s->host || !colon[1] || *end || p < 0 || p > 65535)
		return tend_error_set(TEND_EINVAL, "listen address '%s': expected "
				      "HOST:PORT with a port in 0..65535", listen);
	memcpy(s->host, h, hl);
	s->host[hl] = '\0';
	*port = (int)p;
	return 0;
}

/* Resolves and binds the listening socket ourselves, so that a failure
 * names its cause (address in use, no such host). */
static int bind_socket(srv *s, int port, int *out_fd, bool *v6)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_PASSIVE}, *ai = NULL;
	char ps[16];
	int fd = -1, one = 1, rc;
	snprintf(ps, sizeof ps, "%d", port);
	if ((rc = getaddrinfo(s->host, ps, &hints, &ai)) != 0)
		return tend_error_set(TEND_EINVAL, "listen address %s: %s", s->host,
				      gai_strerror(rc));
	*v6 = ai->ai_family == AF_INET6;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		rc = tend_error_os("listen on %s:%d", s->host, port);
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	s->port = ntohs(ss.ss_family == AF_INET6
		? ((struct sockaddr_in6 *)&ss)->sin6_port
		: ((struct sockaddr_in *)&ss)->sin_port);
	*out_fd = fd;
	return 0;
}

static char *path_in_ws(const char *ws, const char *p)
{
	char buf[PATH_MAX];
	if (!p || !*p)
		p = "serve.token";
	if (*p == '/')
		return strdup(p);
	if (fsu_join(buf, sizeof buf, ws, p) < 0)
		return NULL;
	return strdup(buf);
}

static char *exe_path(const char *given)
{
	char buf[PATH_MAX];
	if (given)
		return strdup(given);
	return cli_self_exe(buf, sizeof buf) < 0 ? NULL : strdup(buf);
}

static int setup(srv *s, const srv_opts *o, int *port)
{
	char db[PATH_MAX];
	int rc;
	if (!o->workspace || fsu_join(db, sizeof db, o->workspace, "tend.db") < 0)
		return tend_error_set(TEND_EINVAL, "serve: no workspace");
	if ((rc = parse_listen(s, o->listen ? o->listen : "127.0.0.1:8765", port)) < 0)
		return rc;
	s->ws = strdup(o->workspace);
	s->db = strdup(db);
	s->exe = exe_path(o->tend_exe);
	s->token_path = path_in_ws(o->workspace, o->token_file);
	if (!s->ws || !s->db || !s->exe || !s->token_path)
		return tend_error_set(TEND_ENOMEM, "serve: setting up");
	s->loopback = srv_is_loopback(s->host);
	s->read_only = o->read_only;
	s->need_token = !s->loopback || o->require_token;
	s->timeout_s = o->action_timeout_s > 0 ? o->action_timeout_s : 300;
	if ((rc = random_hex(s->csrf, 32)) < 0)
		return rc;
	if (s->need_token && (rc = load_token(s)) < 0)
		return rc;
	return 0;
}

int srv_new(srv **out, const srv_opts *o)
{
	srv *s = calloc(1, sizeof *s);
	int fd = -1, port = 0, rc;
	bool v6 = false;
	*out = NULL;
	if (!s)
		return tend_error_set(TEND_ENOMEM, "serve");
	pthread_mutex_init(&s->mu, NULL);
	if ((rc = setup(s, o, &port)) < 0 || (rc = bind_socket(s, port, &fd, &v6)) < 0)
		goto done;
	snprintf(s->url, sizeof s->url, v6 ? "http://[%s]:%d/" : "http://%s:%d/",
		 s->host, s->port);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
				(v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
				on_request, s,
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_THREAD_POOL_SIZE,
				(unsigned)(o->threads > 0 ? o->threads : 4),
				MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
				MHD_OPTION_CONNECTION_LIMIT, 256u,
				MHD_OPTION_CONNECTION_TIMEOUT, 60u,
				MHD_OPTION_END);
	if (!s->d) {
		rc = tend_error_set(TEND_EIO, "serve: the HTTP server did not start on %s",
				    s->url);
		goto done;
	}
	fd = -1; /* the daemon owns it now */
	*out = s;
	s = NULL;
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	srv_free(s);
	return rc;
}

void srv_free(srv *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	for (int i = 0; i < s->npool; i++)
		store_close(s->pool[i]);
	srv__series_cache_free(s);
	pthread_mutex_destroy(&s->mu);
	free(s->ws);
	free(s->db);
	free(s->exe);
	free(s->token_path);
	free(s);
}

int srv_port(const srv *s)
{
	return s->port;
}

const char *srv_url(const srv *s)
{
	return s->url;
}

const char *srv_token_path(const srv *s)
{
	return s->need_token ? s->token_path : NULL;
}
