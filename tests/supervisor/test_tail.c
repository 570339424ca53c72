/* test_tail.c - the line tailer on a real growing file: partial lines wait,
 * offsets sit on line boundaries, overlong lines are cut, truncation. */
#include "tail.h"
#include "tend.h"
#include "tt.h"

#include <fcntl.h>
#include <unistd.h>

typedef struct {
	char lines[16][64];
	int64_t ends[16];
	bool over[16];
	int n;
} got_t;

static int collect(const char *line, size_t len, int64_t end, bool over, void *ud)
{
	got_t *g = ud;
	if (g->n < 16) {
		snprintf(g->lines[g->n], 64, "%.*s", (int)len, line);
		g->ends[g->n] = end;
		g->over[g->n] = over;
		g->n++;
	}
	return 0;
}

static char path[96];

static void append(const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	TT_CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
	close(fd);
}

static void test_partial_lines_wait(void)
{
	tail *t;
	got_t g = {0};
	unlink(path);
	TT_REQUIRE(tail_new(&t, path, 0, 32) == 0);
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 0); /* no file yet */
	append("one\ntw");
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 1);
	TT_CHECK(tail_offset(t) == 4);
	append("o\nthree\n");
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 2);
	TT_CHECK_STR(g.lines[1], "two");
	TT_CHECK_STR(g.lines[2], "three");
	TT_CHECK(g.ends[2] == 14 && tail_offset(t) == 14);
	tail_free(t);
}

static void test_resume_from_offset(void)
{
	tail *t;
	got_t g = {0};
	TT_REQUIRE(tail_new(&t, path, 4, 32) == 0); /* after "one\n" */
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 2);
	TT_CHECK_STR(g.lines[0], "two");
	tail_free(t);
}

static void test_overlong_line_cut(void)
{
	tail *t;
	got_t g = {0};
	unlink(path);
	TT_REQUIRE(tail_new(&t, path, 0, 8) == 0);
	append("0123456789abcdef");
	TT_CHECK(tail_poll(t, 5, collect, &g, NULL) == 0);
	TT_CHECK(tail_poll(t, 5, collect, &g, NULL) == 0);
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 0);
	append("XYZ\nok\n");
	TT_CHECK(tail_poll(t, 4096, collect, &g, NULL) == 2);
	TT_CHECK_STR(g.lines[0], "01234567");
	TT_CHECK(g.over[0]);
	TT_CHECK(g.ends[0] == 20);
	TT_CHECK_STR(g.lines[1], "ok");
	TT_CHECK(!g.over[1] && g.ends[1] == 23);
	tail_free(t);
}

static void test_truncation_restarts(void)
{
	tail *t;
	got_t g = {0};
	bool trunc = false;
	unlink(path);
	append("aaaa\nbbbb\n");
	TT_REQUIRE(tail_new(&t, path, 0, 32) == 0);
	TT_CHECK(tail_poll(t, 4096, collect, &g, &trunc) == 2 && !trunc);
	TT_REQUIRE(truncate(path, 0) == 0);
	append("c\n");
	TT_CHECK(tail_poll(t, 4096, collect, &g, &trunc) == 1);
	TT_CHECK(trunc);
	TT_CHECK_STR(g.lines[2], "c");
	tail_free(t);
}

int main(void)
{
	char dir[] = "/tmp/tend-test-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
	TT_RUN(test_partial_lines_wait);
	TT_RUN(test_resume_from_offset);
	TT_RUN(test_overlong_line_cut);
	TT_RUN(test_truncation_restarts);
	unlink(path);
	rmdir(dir);
	return TT_DONE();
}
