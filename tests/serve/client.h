/*
 * client.h - what the dashboard's API tests share: `tend serve` started
 * as a real child process on a free loopback port, and HTTP requests to
 * it through libcurl, with their status, headers and body.
 */
#ifndef SERVE_TEST_CLIENT_H
#define SERVE_TEST_CLIENT_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct served {
	pid_t pid;
	int out;           /* the server's stdout and stderr */
	int port;
	char base[96];     /* "http://127.0.0.1:PORT" */
	char banner[1024]; /* what it printed before serving (or failing) */
} served;

/* Starts `$TEND_BIN --workspace ws serve --listen 127.0.0.1:0 extra...`
 * and waits for its banner. 0 when it serves; -1 when it exited (its
 * output is in banner, its status in *exit_status if not NULL). */
static inline int served_start(served *s, const char *ws, const char *listen,
			const char *const *extra, int *exit_status)
{
	const char *bin = getenv("TEND_BIN");
	char *argv[16];
	int n = 0, fds[2], st = 0;
	size_t len = 0;
	posix_spawn_file_actions_t fa;
	memset(s, 0, sizeof *s);
	if (!bin || pipe(fds) != 0)
		return -1;
	argv[n++] = (char *)bin;
	argv[n++] = "--workspace";
	argv[n++] = (char *)ws;
	argv[n++] = "serve";
	argv[n++] = "--listen";
	argv[n++] = (char *)(listen ? listen : "127.0.0.1:0");
	for (int i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	int rc = posix_spawn(&s->pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	s->out = fds[0];
	if (rc != 0)
		return -1;
	/* read until the URL line arrives or the child exits (30 s: ASan) */
	for (int waited = 0; waited < 30000 && len < sizeof s->banner - 1;) {
		struct pollfd p = {s->out, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0) {
			waited += 100;
			continue;
		}
		ssize_t got = read(s->out, s->banner + len, sizeof s->banner - 1 - len);
		if (got <= 0)
			break;
		len += (size_t)got;
		s->banner[len] = '\0';
		char *u = strstr(s->banner, "http://");
		if (u && strchr(u, '\n')) {
			char *colon = strchr(u + 7, ':'); /* IPv4 in the tests */
			s->port = colon ? atoi(colon + 1) : 0;
			snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
			return 0;
		}
	}
	waitpid(s->pid, &st, 0);
	s->pid = 0;
	if (exit_status)
		*exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return -1;
}

/* SIGTERM and wait; returns the exit status (0 for a clean stop). */
static inline int served_stop(served *s)
{
	int st = 0;
	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	waitpid(s->pid, &st, 0);
	s->pid = 0;
	close(s->out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct resp {
	long status;
	char *body;
	size_t len;
	char ctype[128];
	char allow[128];
	double ms;
} resp;

static inline size_t resp_body(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	char *nb = realloc(r->body, r->len + sz * n + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, p, sz * n);
	r->body = nb;
	r->len += sz * n;
	nb[r->len] = '\0';
	return sz * n;
}

static inline size_t resp_header(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t len = sz * n;
	if (len > 7 && !strncasecmp(p, "Allow: ", 7))
		snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - 9), p + 7);
	return len;
}

/* One request: method, path (under base), extra headers (NULL-ended),
 * body (NULL: none). The answer goes into *r (free with resp_free). */
static inline int http(resp *r, const served *s, const char *method, const char *path,
		const char *const *headers, const char *body)
{
	char url[2048];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	memset(r, 0, sizeof *r);
	if (!c)
		return -1;
	snprintf(url, sizeof url, "%s%s", s->base, path);
	for (int i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	CURLcode rc = curl_easy_perform(c);
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->ms);
	r->ms *= 1000;
	snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
	if (!r->body)
		r->body = calloc(1, 1);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK)
		fprintf(stderr, "http %s %s: %s\n", method, path, curl_easy_strerror(rc));
	return rc == CURLE_OK ? 0 : -1;
}

static inline void resp_free(resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Runs argv to completion with output discarded; returns its exit status. */
static inline int run_quiet(char *const argv[])
{
	pid_t pid;
	int st = 0;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
