/*
 * test_config_nomem.c - cfg_load_buf with the Nth allocation failing, for
 * every N until it succeeds: each failure must come back as TEND_ENOMEM
 * with nothing leaked (the sanitizer build checks leaks) and no half-made
 * config handed out. The allocator is swapped with the linker's --wrap, so
 * it catches tend's own allocations, not libyaml's or libc's.
 */
#include "config.h"
#include "tend.h"
#include "tt.h"

#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static long fail_at = -1, allocs;

static bool fail_now(void)
{
	return fail_at >= 0 && ++allocs == fail_at;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

static const char yaml[] =
	"run:\n"
	"  command: [python3, train.py]\n"
	"  env_passthrough: [PATH, HOME]\n"
	"trainer:\n"
	"  inject: [nan@300]\n"
	"monitors:\n"
	"  loss_spike: {window: 64}\n"
	"alerts:\n"
	"  webhooks:\n"
	"    - url: https://hooks.example.com/a\n"
	"      events: [incident]\n"
	"    - url: https://hooks.example.com/b\n"
	"proposer:\n"
	"  model: m\n";

static void test_every_allocation_fails_cleanly(void)
{
	cfg *want = NULL, *c;
	long n;
	TT_CHECK_RC(cfg_load_buf(&want, "tend.yaml", yaml, strlen(yaml)), 0);
	TT_REQUIRE(want);
	for (n = 1; n < 100000; n++) {
		c = (cfg *)1;
		allocs = 0;
		fail_at = n;
		int rc = cfg_load_buf(&c, "tend.yaml", yaml, strlen(yaml));
		fail_at = -1;
		if (rc == 0) {
			TT_CHECK(cfg_equal(c, want));
			cfg_free(c);
			break;
		}
		TT_CHECK(c == NULL);
		if (rc != TEND_ENOMEM || !strstr(tend_error_last(), "out of memory")) {
			fprintf(stderr, "allocation %ld: rc %d: %s\n", n, rc, tend_error_last());
			tt_case_failed = 1;
			break;
		}
	}
	fprintf(stderr, "failed each of %ld allocations in turn\n", n - 1);
	TT_CHECK(n > 50); /* the wrap took: the load allocates */
	cfg_free(want);
}

int main(void)
{
	TT_RUN(test_every_allocation_fails_cleanly);
	return TT_DONE();
}
