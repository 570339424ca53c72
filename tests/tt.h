/*
 * tt.h - tend's tiny test harness, header-only.
 *
 * A test file defines functions `static void test_x(void)` and lists them
 * in main with TT_RUN(test_x). A failed TT_CHECK marks the current case
 * failed and continues; TT_REQUIRE returns from the case. main returns
 * TT_DONE(), which prints "tt: N passed, N failed" for the summary script
 * and exits non-zero when a case failed. Exit 77 means skip (meson).
 */
#ifndef TT_H
#define TT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tt_pass, tt_fail, tt_case_failed;
static const char *tt_case;

#define TT_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, \
			__LINE__, tt_case, #cond); \
		tt_case_failed = 1; \
	} } while (0)

#define TT_REQUIRE(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: %s: required: %s\n", __FILE__, \
			__LINE__, tt_case, #cond); \
		tt_case_failed = 1; \
		return; \
	} } while (0)

/* Checks that an int-returning call yields want; prints tend_error_last(). */
#define TT_CHECK_RC(call, want) do { \
	int tt_rc_ = (call); \
	if (tt_rc_ != (want)) { \
		fprintf(stderr, "%s:%d: %s: %s returned %d, want %d (%s)\n", \
			__FILE__, __LINE__, tt_case, #call, tt_rc_, (want), \
			tend_error_last()); \
		tt_case_failed = 1; \
	} } while (0)

#define TT_CHECK_STR(got, want) do { \
	const char *tt_g_ = (got), *tt_w_ = (want); \
	if (!tt_g_ || strcmp(tt_g_, tt_w_) != 0) { \
		fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", \
			__FILE__, __LINE__, tt_case, tt_g_ ? tt_g_ : "(null)", \
			tt_w_); \
		tt_case_failed = 1; \
	} } while (0)

/* Checks that haystack contains needle (for error messages). */
#define TT_CHECK_HAS(hay, needle) do { \
	const char *tt_h_ = (hay), *tt_n_ = (needle); \
	if (!tt_h_ || !strstr(tt_h_, tt_n_)) { \
		fprintf(stderr, "%s:%d: %s: \"%s\" does not contain \"%s\"\n", \
			__FILE__, __LINE__, tt_case, tt_h_ ? tt_h_ : "(null)", \
			tt_n_); \
		tt_case_failed = 1; \
	} } while (0)

#define TT_RUN(fn) do { \
	tt_case = #fn; tt_case_failed = 0; \
	fn(); \
	if (tt_case_failed) { tt_fail++; fprintf(stderr, "FAIL %s\n", #fn); } \
	else { tt_pass++; fprintf(stderr, "ok   %s\n", #fn); } \
	} while (0)

#define TT_DONE() ( \
	printf("tt: %d passed, %d failed\n", tt_pass, tt_fail), \
	fflush(stdout), tt_fail ? 1 : 0)

#endif
