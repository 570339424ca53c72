/*
 * httpd.h - start and stop the loopback test server (tests/support/httpd.c)
 * from a test: a real child process on a real port. Header-only.
 */
#ifndef TEST_HTTPD_H
#define TEST_HTTPD_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
	pid_t pid;
	int port;
} test_httpd;

/* Starts the server binary (env TEND_TEST_HTTPD) serving dir. */
static int test_httpd_start(test_httpd *h, const char *dir)
{
	int p[2];
	const char *bin = getenv("TEND_TEST_HTTPD");
	if (!bin || pipe(p) < 0)
		return -1;
	h->pid = fork();
	if (h->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(bin, bin, dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *f = fdopen(p[0], "r");
	int ok = fscanf(f, "%d", &h->port) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

static void test_httpd_stop(test_httpd *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	h->pid = 0;
}

#endif
