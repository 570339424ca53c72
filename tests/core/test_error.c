/* test_error.c - the error slot: set, wrap, errno, clear. */
#include "tend.h"
#include "tt.h"

#include <errno.h>

static void test_set_returns_code(void)
{
	TT_CHECK(tend_error_set(TEND_EINVAL, "bad %s", "key") == TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "bad key");
	TT_CHECK(tend_error_code() == TEND_EINVAL);
}

static void test_wrap_prefixes(void)
{
	tend_error_set(TEND_EIO, "disk full");
	TT_CHECK(tend_error_wrap(TEND_EIO, "writing %s", "x.db") == TEND_EIO);
	TT_CHECK_STR(tend_error_last(), "writing x.db: disk full");
}

static void test_os_uses_errno(void)
{
	errno = ENOENT;
	TT_CHECK(tend_error_os("open %s", "f") == TEND_EIO);
	TT_CHECK_STR(tend_error_last(), "open f: No such file or directory");
}

static void test_clear_never_null(void)
{
	tend_error_clear();
	TT_CHECK_STR(tend_error_last(), "no error");
	TT_CHECK(tend_error_code() == 0);
}

int main(void)
{
	TT_RUN(test_set_returns_code);
	TT_RUN(test_wrap_prefixes);
	TT_RUN(test_os_uses_errno);
	TT_RUN(test_clear_never_null);
	return TT_DONE();
}
