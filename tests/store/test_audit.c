/*
 * test_audit.c - the hash-chained audit log: the chain is what
 * docs/store.md says (recomputed here independently), the triggers stop
 * casual edits, and verify names the first bad row when rows are edited,
 * deleted, reordered or forged through a raw SQLite connection.
 */
#include "store.h"
#include "sha256.h"
#include "tend.h"
#include "tt.h"
#include "helpers.h"

#include <inttypes.h>
#include <math.h>

static char dir[64];

/* A database in dir/name with five audit rows; returns its path. */
static const char *five_rows(char *path, size_t cap, const char *name)
{
	static const char *const actions[] = { "propose", "evaluate", "gate",
					       "promote", "note" };
	store *s = NULL;
	int64_t seq = 0;

	th_path(path, cap, dir, name);
	if (store_open(&s, path, STORE_CREATE) != 0)
		return NULL;
	for (int i = 0; i < 5; i++)
		if (store_audit_append(s, "tend", actions[i], "proposal:1",
				       i == 4 ? NULL : "{\"n\":1}", &seq) != 0 ||
		    seq != i + 1) {
			store_close(s);
			return NULL;
		}
	store_close(s);
	return path;
}

/* Verifies path; returns the code and puts the first bad seq in *bad. */
static int verify(const char *path, int64_t *bad)
{
	store *s = NULL;
	int rc = store_open(&s, path, 0);

	if (rc == 0)
		rc = store_audit_verify(s, bad);
	store_close(s);
	return rc;
}

typedef struct rows { int n; store_audit_row r[8]; char hash[8][65], prev[8][65]; } rows;

static int keep(const store_audit_row *r, void *ud)
{
	rows *k = ud;

	if (k->n < 8) {
		k->r[k->n] = *r;
		snprintf(k->hash[k->n], 65, "%s", r->hash);
		snprintf(k->prev[k->n], 65, "%s", r->prev_hash);
	}
	k->n++;
	return 0;
}

static void test_chain_matches_documented_format(void)
{
	char path[256], text[512], want[65], zeros[65];
	rows k = { 0 };
	store *s = NULL;
	int64_t bad = -1;

	TT_REQUIRE(five_rows(path, sizeof path, "format.db"));
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	TT_CHECK_RC(store_audit_verify(s, &bad), 0);
	TT_CHECK(bad == 0);
	TT_CHECK_RC(store_audit_list(s, 0, keep, &k), 0);
	TT_REQUIRE(k.n == 5);
	memset(zeros, '0', 64);
	zeros[64] = '\0';
	TT_CHECK_STR(k.prev[0], zeros);
	/* Row 1: prev_hash || "tend-audit-1\n" seq t_us F(actor) ... */
	snprintf(text, sizeof text, "%stend-audit-1\n1\n%" PRId64 "\n"
		 "4:tend\n7:propose\n10:proposal:1\n7:{\"n\":1}\n", zeros,
		 (int64_t)llround(k.r[0].t * 1e6));
	sha256_hex(text, strlen(text), want);
	TT_CHECK_STR(k.hash[0], want);
	/* Row 5 has a NULL detail, written "-". */
	snprintf(text, sizeof text, "%stend-audit-1\n5\n%" PRId64 "\n"
		 "4:tend\n4:note\n10:proposal:1\n-\n", k.hash[3],
		 (int64_t)llround(k.r[4].t * 1e6));
	sha256_hex(text, strlen(text), want);
	TT_CHECK_STR(k.hash[4], want);
	for (int i = 1; i < 5; i++)
		TT_CHECK_STR(k.prev[i], k.hash[i - 1]);
	k.n = 0;
	TT_CHECK_RC(store_audit_list(s, 3, keep, &k), 0);
	TT_CHECK(k.n == 2 && k.r[0].seq == 4);
	store_close(s);
}

static void test_triggers_refuse_edits(void)
{
	char path[256];

	TT_REQUIRE(five_rows(path, sizeof path, "triggers.db"));
	TT_CHECK(th_raw_exec(path, "UPDATE audit SET actor = 'eve'") ==
		 SQLITE_CONSTRAINT);
	TT_CHECK(th_raw_exec(path, "DELETE FROM audit WHERE seq = 2") ==
		 SQLITE_CONSTRAINT);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM audit") == 5);
}

/* Tampering goes around the triggers, as a deliberate edit would. */
static void tamper(const char *path, const char *sql)
{
	char all[1024];

	snprintf(all, sizeof all, "DROP TRIGGER audit_no_update; "
		 "DROP TRIGGER audit_no_delete; %s", sql);
	TT_CHECK(th_raw_exec(path, all) == SQLITE_OK);
}

static void check_bad(const char *name, const char *sql, int64_t want_bad,
		      const char *want_msg)
{
	char path[256], want[512];
	int64_t bad = -1;

	TT_REQUIRE(five_rows(path, sizeof path, name));
	tamper(path, sql);
	TT_CHECK_RC(verify(path, &bad), TEND_EINVAL);
	TT_CHECK(bad == want_bad);
	snprintf(want, sizeof want, "%s: %s", path, want_msg);
	TT_CHECK_STR(tend_error_last(), want);
}

static void test_edited_row(void)
{
	check_bad("edit.db", "UPDATE audit SET detail = '{\"n\":2}' "
		  "WHERE seq = 3", 3, "audit row 3 was altered (its hash "
		  "does not match its contents)");
	check_bad("edit-t.db", "UPDATE audit SET t = t + 1 WHERE seq = 4", 4,
		  "audit row 4 was altered (its hash does not match its "
		  "contents)");
}

static void test_deleted_rows(void)
{
	check_bad("del-mid.db", "DELETE FROM audit WHERE seq = 2", 2,
		  "audit row 2 is missing (deleted)");
	check_bad("del-first.db", "DELETE FROM audit WHERE seq = 1", 1,
		  "audit row 1 is missing (deleted)");
	check_bad("del-tail.db", "DELETE FROM audit WHERE seq >= 4", 4,
		  "audit row 4 is missing (deleted from the end; 5 rows were "
		  "written)");
}

static void test_swapped_rows(void)
{
	check_bad("swap.db", "UPDATE audit SET seq = -2 WHERE seq = 2; "
		  "UPDATE audit SET seq = 2 WHERE seq = 3; "
		  "UPDATE audit SET seq = 3 WHERE seq = -2;", 2,
		  "audit row 2 was altered (its hash does not match its "
		  "contents)");
}

/* A forger who rewrites row 3 and recomputes its hash still breaks the
 * link to row 4. */
static void test_forged_row_breaks_link(void)
{
	char path[256], text[512], hash[65], sql[512], want[512];
	rows k = { 0 };
	store *s = NULL;
	int64_t bad = -1;

	TT_REQUIRE(five_rows(path, sizeof path, "forge.db"));
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	TT_CHECK_RC(store_audit_list(s, 0, keep, &k), 0);
	store_close(s);
	TT_REQUIRE(k.n == 5);
	snprintf(text, sizeof text, "%stend-audit-1\n3\n%" PRId64 "\n"
		 "3:eve\n4:gate\n10:proposal:1\n7:{\"n\":1}\n", k.hash[1],
		 (int64_t)llround(k.r[2].t * 1e6));
	sha256_hex(text, strlen(text), hash);
	snprintf(sql, sizeof sql, "UPDATE audit SET actor = 'eve', hash = '%s' "
		 "WHERE seq = 3", hash);
	tamper(path, sql);
	TT_CHECK_RC(verify(path, &bad), TEND_EINVAL);
	TT_CHECK(bad == 4);
	snprintf(want, sizeof want, "%s: audit row 4 does not follow row 3 "
		 "(rows reordered, inserted or altered)", path);
	TT_CHECK_STR(tend_error_last(), want);
}

static void test_append_in_batch_and_bad_input(void)
{
	char path[256];
	store *s = NULL;
	int64_t seq = 0, bad = -1;

	th_path(path, sizeof path, dir, "batch.db");
	TT_REQUIRE(store_open(&s, path, STORE_CREATE) == 0);
	TT_CHECK_RC(store_audit_verify(s, &bad), 0);
	TT_CHECK_RC(store_audit_append(s, "tend", "start", NULL, NULL, &seq), 0);
	TT_CHECK_RC(store_batch_begin(s), 0);
	TT_CHECK_RC(store_audit_append(s, "tend", "promote", "p:1", NULL, &seq), 0);
	TT_CHECK(seq == 2);
	TT_CHECK_RC(store_batch_rollback(s), 0);
	TT_CHECK_RC(store_audit_append(s, "tend", "reject", "p:1", NULL, &seq), 0);
	TT_CHECK(seq == 2);
	TT_CHECK_RC(store_audit_verify(s, &bad), 0);
	TT_CHECK_RC(store_audit_append(s, "", "x", NULL, NULL, &seq), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "batch.db: an audit row needs an actor "
		     "and an action");
	TT_CHECK_RC(store_audit_append(s, "tend", "x", NULL, "{oops", &seq),
		    TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "batch.db: appending to the audit log: "
		     "not valid JSON in the detail: 1:2: ");
	TT_CHECK_RC(store_audit_verify(s, NULL), 0);
	store_close(s);
}

int main(void)
{
	th_tmpdir(dir);
	TT_RUN(test_chain_matches_documented_format);
	TT_RUN(test_triggers_refuse_edits);
	TT_RUN(test_edited_row);
	TT_RUN(test_deleted_rows);
	TT_RUN(test_swapped_rows);
	TT_RUN(test_forged_row_breaks_link);
	TT_RUN(test_append_in_batch_and_bad_input);
	th_rmtree(dir);
	return TT_DONE();
}
