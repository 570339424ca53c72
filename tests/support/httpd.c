/*
 * httpd.c - a scriptable HTTP/1.1 server on loopback for tests: webhooks,
 * model endpoints, misbehaving servers. Real sockets, real child process.
 *
 *   tend-test-httpd DIR      prints "PORT\n" on stdout once listening
 *
 * The first path segment picks a scenario; everything after it is ignored
 * (so a client may append /chat/completions or /v1/messages):
 *   /ok/...        200, body DIR/ok.body (or "{}")
 *   /file/NAME/... 200, body DIR/NAME (status from DIR/NAME.status if any)
 *   /seq/NAME/...  the Nth request gets DIR/NAME.N (N from 1; the last file
 *                  repeats); its status from DIR/NAME.N.status, default 200
 *   /500/...       500 always
 *   /429/...       429 with Retry-After: 1 for the first 2 requests, then
 *                  200 with DIR/ok.body
 *   /hang/...      reads the request, never answers
 *   /trickle/...   200, then one byte every 200 ms for a minute
 *   /big/...       200 with a 50 MB body
 *   /hdr/NAME/...  as /seq/NAME, and the request's head (request line and
 *                  headers) is appended to DIR/headers.log
 * Every request is appended to DIR/requests.log as one line:
 *   METHOD PATH BODYLEN\t<body with newlines escaped>
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)n + 1);
	*len = fread(*out, 1, (size_t)n, f);
	(*out)[*len] = '\0';
	fclose(f);
	return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void respond(int fd, int status, const char *extra, const char *body, size_t len)
{
	char head[512];
	int h = snprintf(head, sizeof head,
		"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		"Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
		status, len, extra ? extra : "");
	send_all(fd, head, (size_t)h);
	send_all(fd, body, len);
}

/* A counter per scenario name kept in a file (requests are served by
 * separate processes). */
static int bump(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/.count.%s", dir, name);
	int n = 0;
	FILE *f = fopen(path, "a+");
	flock(fileno(f), LOCK_EX);
	rewind(f);
	if (fscanf(f, "%d", &n) != 1)
		n = 0;
	n++;
	FILE *g = fopen(path, "w");
	fprintf(g, "%d\n", n);
	fclose(g);
	fclose(f);
	return n;
}

static void log_request(const char *method, const char *path, const char *body, size_t len)
{
	char lp[512];
	snprintf(lp, sizeof lp, "%s/requests.log", dir);
	FILE *f = fopen(lp, "a");
	if (!f)
		return;
	flock(fileno(f), LOCK_EX);
	fprintf(f, "%s %s %zu\t", method, path, len);
	for (size_t i = 0; i < len && i < 1000000; i++)
		if (body[i] == '\n')
			fputs("\\n", f);
		else
			fputc(body[i], f);
	fputc('\n', f);
	fclose(f);
}

/* The request head as it came, for tests that check headers. */
static void log_head(const char *head, size_t len)
{
	char lp[512];
	snprintf(lp, sizeof lp, "%s/headers.log", dir);
	FILE *f = fopen(lp, "a");
	if (!f)
		return;
	flock(fileno(f), LOCK_EX);
	fwrite(head, 1, len, f);
	fputs("\r\n\r\n", f);
	fclose(f);
}

static void serve_file(int fd, const char *name)
{
	char path[512], *body = NULL, *st = NULL;
	size_t len = 0, sl;
	int status = 200;
	snprintf(path, sizeof path, "%s/%s.status", dir, name);
	if (read_file(path, &st, &sl) == 0)
		status = atoi(st);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (read_file(path, &body, &len) < 0)
		respond(fd, 404, NULL, "{\"error\":\"no such file\"}", 24);
	else
		respond(fd, status, NULL, body, len);
	free(body);
	free(st);
}

static void serve_seq(int fd, const char *name)
{
	int n = bump(name);
	char f[256], path[512];
	for (; n > 1; n--) {
		snprintf(f, sizeof f, "%s.%d", name, n);
		snprintf(path, sizeof path, "%s/%s", dir, f);
		if (access(path, R_OK) == 0)
			break;
	}
	snprintf(f, sizeof f, "%s.%d", name, n);
	serve_file(fd, f);
}

static void scenario(int fd, const char *path)
{
	char seg[128] = "", arg[128] = "";
	sscanf(path, "/%127[^/]/%127[^/]", seg, arg);
	if (strcmp(seg, "ok") == 0) {
		serve_file(fd, "ok.body");
	} else if (strcmp(seg, "file") == 0) {
		serve_file(fd, arg);
	} else if (strcmp(seg, "seq") == 0) {
		serve_seq(fd, arg);
	} else if (strcmp(seg, "500") == 0) {
		respond(fd, 500, NULL, "{\"error\":\"boom\"}", 16);
	} else if (strcmp(seg, "429") == 0) {
		if (bump("429") <= 2)
			respond(fd, 429, "Retry-After: 1\r\n", "{\"error\":\"slow down\"}", 21);
		else
			serve_file(fd, "ok.body");
	} else if (strcmp(seg, "hang") == 0) {
		sleep(120);
	} else if (strcmp(seg, "trickle") == 0) {
		send_all(fd, "HTTP/1.1 200 X\r\nContent-Length: 300\r\n\r\n", 39);
		for (int i = 0; i < 300; i++) {
			send_all(fd, "x", 1);
			usleep(200000);
		}
	} else if (strcmp(seg, "hdr") == 0) {
		serve_seq(fd, arg);
	} else if (strcmp(seg, "big") == 0) {
		size_t n = 50u << 20;
		char *b = malloc(n);
		memset(b, 'a', n);
		respond(fd, 200, NULL, b, n);
		free(b);
	} else {
		respond(fd, 404, NULL, "{}", 2);
	}
}

static void handle(int fd)
{
	static char req[1 << 20];
	size_t n = 0;
	char *end = NULL;
	while (!end && n < sizeof req - 1) {
		ssize_t r = read(fd, req + n, sizeof req - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	if (!end)
		return;
	char method[16], path[1024];
	if (sscanf(req, "%15s %1023s", method, path) != 2)
		return;
	size_t clen = 0;
	char *cl = strcasestr(req, "\r\nContent-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 17, NULL, 10);
	size_t have = n - (size_t)(end + 4 - req);
	char *body = malloc(clen + 1);
	memcpy(body, end + 4, have < clen ? have : clen);
	while (have < clen) {
		ssize_t r = read(fd, body + have, clen - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	body[clen] = '\0';
	log_request(method, path, body, clen);
	if (strncmp(path, "/hdr/", 5) == 0)
		log_head(req, (size_t)(end - req));
	free(body);
	scenario(fd, path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tend-test-httpd DIR\n");
		return 2;
	}
	dir = argv[1];
	signal(SIGCHLD, SIG_IGN); /* children reap themselves */
	signal(SIGPIPE, SIG_IGN);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0) {
		perror("httpd");
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with the server */
			close(s);
			handle(c);
			close(c);
			_exit(0);
		}
		close(c);
	}
}
