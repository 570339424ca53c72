/*
 * store_audit.c - the audit log: an append-only, hash-chained record of
 * every decision tend takes about the scaffold (who proposed, what the
 * gates said, who promoted). Each row's hash covers the previous row's
 * hash and the row's own canonical text, so editing, deleting or
 * reordering rows breaks the chain at the first row touched.
 *
 * The canonical text (docs/store.md) is written so that anyone can verify
 * the chain with sqlite3 and sha256sum:
 *
 *   "tend-audit-1\n" seq "\n" t_us "\n" F(actor) "\n" F(action) "\n"
 *   F(subject) "\n" F(detail) "\n"
 *
 * where seq and t_us (t in whole microseconds) are decimal integers and
 * F(x) is "-" for NULL, else the byte length of x in decimal, ":", and x.
 * hash = lowercase hex SHA-256 of prev_hash (64 hex digits; 64 zeros for
 * the first row) followed by the canonical text.
 */
#include "store_int.h"
#include "sha256.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char genesis[65] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static void put_int(sha256_ctx *c, int64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%" PRId64 "\n", v);

	sha256_update(c, buf, (size_t)n);
}

static void put_field(sha256_ctx *c, const char *v, size_t len)
{
	char buf[32];
	int n;

	if (!v) {
		sha256_update(c, "-\n", 2);
		return;
	}
	n = snprintf(buf, sizeof buf, "%zu:", len);
	sha256_update(c, buf, (size_t)n);
	sha256_update(c, v, len);
	sha256_update(c, "\n", 1);
}

static int64_t micros(double t)
{
	return (int64_t)llround(t * 1e6);
}

/* The hash of a row given its fields; lens are the text lengths. */
static void row_hash(char out[65], const char *prev, int64_t seq, double t,
		     const char *const f[4], const size_t len[4])
{
	sha256_ctx c;
	uint8_t d[32];

	sha256_init(&c);
	sha256_update(&c, prev, strlen(prev));
	sha256_update(&c, "tend-audit-1\n", 13);
	put_int(&c, seq);
	put_int(&c, micros(t));
	for (int i = 0; i < 4; i++)
		put_field(&c, f[i], len[i]);
	sha256_final(&c, d);
	sha256_to_hex(d, out);
}

/* The next seq and the hash it chains to. The next seq comes from
 * sqlite_sequence, so deleting the last rows leaves a gap verify sees. */
static int chain_tail(store *s, int64_t *next, char prev[65])
{
	sqlite3_stmt *st = NULL;
	const char *h;
	int rc = store__stmt(s, STORE__ST_AUDIT_LAST,
			"SELECT coalesce((SELECT seq FROM sqlite_sequence "
			"WHERE name = 'audit'), 0), (SELECT hash FROM audit "
			"ORDER BY seq DESC LIMIT 1)", &st);

	if (rc)
		return rc;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		rc = store__err(s, rc, "reading the audit chain");
		goto done;
	}
	*next = sqlite3_column_int64(st, 0) + 1;
	h = (const char *)sqlite3_column_text(st, 1);
	snprintf(prev, 65, "%s", h ? h : genesis);
	rc = 0;
done:
	sqlite3_reset(st);
	return rc;
}

static int insert_row(store *s, int64_t seq, double t, const char *const f[4],
		      const char *prev, const char *hash)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_AUDIT_INSERT,
			"INSERT INTO audit (seq, t, actor, action, subject, "
			"detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, "
			"?6, ?7, ?8)", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_double(st, 2, t);
	for (int i = 0; i < 4; i++)
		store__bind_text(st, 3 + i, f[i]);
	store__bind_text(st, 7, prev);
	store__bind_text(st, 8, hash);
	return store__exec(s, st, "appending to the audit log");
}

int store_audit_append(store *s, const char *actor, const char *action,
		       const char *subject, const char *detail_json,
		       int64_t *out_seq)
{
	const char *f[4] = { actor, action, subject, detail_json };
	size_t len[4];
	char prev[65], hash[65];
	/* Whole microseconds, so the stored REAL hashes the same later. */
	double t = (double)micros(store__now()) / 1e6;
	int64_t seq = 0;
	int own = 0, rc;

	if (!actor || !action || !*actor || !*action)
		return tend_error_set(TEND_EINVAL, "%s: an audit row needs an "
				      "actor and an action", s->path);
	if ((rc = store__check_json(s, detail_json, "appending to the audit "
				    "log", "the detail")) != 0)
		return rc;
	for (int i = 0; i < 4; i++)
		len[i] = f[i] ? strlen(f[i]) : 0;
	if ((rc = store__tx_begin(s, &own)) != 0)
		return rc;
	if ((rc = chain_tail(s, &seq, prev)) == 0) {
		row_hash(hash, prev, seq, t, f, len);
		rc = insert_row(s, seq, t, f, prev, hash);
	}
	rc = store__tx_end(s, own, rc);
	if (rc == 0 && out_seq)
		*out_seq = seq;
	return rc;
}

/* ---- verifying -------------------------------------------------------- */

/* Checks one row against the chain so far; sets *bad and the message. */
static int check_row(store *s, sqlite3_stmt *st, int64_t want_seq,
		     const char *want_prev, int64_t *bad)
{
	int64_t seq = sqlite3_column_int64(st, 0);
	const char *f[4];
	size_t len[4];
	const char *prev = (const char *)sqlite3_column_text(st, 6);
	const char *hash = (const char *)sqlite3_column_text(st, 7);
	char got[65];

	for (int i = 0; i < 4; i++) {
		f[i] = (const char *)sqlite3_column_text(st, 2 + i);
		len[i] = (size_t)sqlite3_column_bytes(st, 2 + i);
	}
	/* A NULL from a column that is not NULL is a failed allocation, not
	 * tampering. */
	for (int i = 2; i < 8; i++)
		if (!sqlite3_column_text(st, i) &&
		    sqlite3_column_type(st, i) != SQLITE_NULL)
			return store__err(s, SQLITE_NOMEM,
					  "verifying the audit log");
	*bad = seq != want_seq ? want_seq : seq;
	if (seq != want_seq)
		return tend_error_set(TEND_EINVAL, "%s: audit row %" PRId64
				      " is missing (deleted)", s->path,
				      want_seq);
	row_hash(got, prev ? prev : "", seq, sqlite3_column_double(st, 1), f,
		 len);
	if (!hash || strcmp(got, hash) != 0)
		return tend_error_set(TEND_EINVAL, "%s: audit row %" PRId64
				      " was altered (its hash does not match "
				      "its contents)", s->path, seq);
	if (!prev || strcmp(prev, want_prev) != 0)
		return tend_error_set(TEND_EINVAL, "%s: audit row %" PRId64
				      " does not follow row %" PRId64 " (rows "
				      "reordered, inserted or altered)",
				      s->path, seq, seq - 1);
	*bad = 0;
	return 0;
}

/* The highest seq ever appended, 0 for none. */
static int sequence_max(store *s, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_AUDIT_SEQUENCE,
			"SELECT coalesce((SELECT seq FROM sqlite_sequence "
			"WHERE name = 'audit'), 0)", &st);

	if (rc)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW ? 0 : store__err(s, rc, "verifying the audit log");
	sqlite3_reset(st);
	return rc;
}

/* Walks the chain; runs inside a read transaction so that the rows and
 * the sequence are one snapshot. */
static int walk(store *s, sqlite3_stmt *st, int64_t *bad)
{
	char prev[65];
	int64_t seq = 0, top = 0;
	int rc;

	memcpy(prev, genesis, sizeof prev);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = check_row(s, st, seq + 1, prev, bad)) != 0)
			goto done;
		seq++;
		snprintf(prev, sizeof prev, "%s",
			 (const char *)sqlite3_column_text(st, 7));
	}
	if (rc != SQLITE_DONE) {
		rc = store__err(s, rc, "verifying the audit log");
		goto done;
	}
	sqlite3_reset(st);
	if ((rc = sequence_max(s, &top)) == 0 && top > seq) {
		*bad = seq + 1;
		rc = tend_error_set(TEND_EINVAL, "%s: audit row %" PRId64 " is "
				    "missing (deleted from the end; %" PRId64
				    " rows were written)", s->path, seq + 1,
				    top);
	}
done:
	sqlite3_reset(st);
	return rc;
}

int store_audit_verify(store *s, int64_t *bad_seq)
{
	sqlite3_stmt *st = NULL;
	int64_t bad = 0;
	int own = 0, rc;

	if ((rc = store__stmt(s, STORE__ST_AUDIT_LIST,
			"SELECT seq, t, actor, action, subject, detail, "
			"prev_hash, hash FROM audit WHERE seq > ?1 "
			"ORDER BY seq", &st)) != 0)
		goto done;
	if ((rc = store__read_begin(s, &own)) != 0)
		goto done;
	sqlite3_bind_int64(st, 1, 0);
	rc = walk(s, st, &bad);
	store__read_end(s, own);
done:
	if (bad_seq)
		*bad_seq = bad;
	return rc;
}

static const store__col audit_cols[] = {
	STORE__COL(STORE__I64, store_audit_row, seq, 0),
	STORE__COL(STORE__DBL, store_audit_row, t, 0),
	STORE__COL(STORE__TEXT, store_audit_row, actor, 0),
	STORE__COL(STORE__TEXT, store_audit_row, action, 0),
	STORE__COL(STORE__TEXT, store_audit_row, subject, 0),
	STORE__COL(STORE__TEXT, store_audit_row, detail, 0),
	STORE__COL(STORE__TEXT, store_audit_row, prev_hash, 0),
	STORE__COL(STORE__TEXT, store_audit_row, hash, 0),
};

int store_audit_list(store *s, int64_t since_seq, store_audit_cb cb, void *ud)
{
	store_audit_row r;
	sqlite3_stmt *st = NULL;
	int rc = store__stmt(s, STORE__ST_AUDIT_LIST,
			"SELECT seq, t, actor, action, subject, detail, "
			"prev_hash, hash FROM audit WHERE seq > ?1 "
			"ORDER BY seq", &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, since_seq);
	while ((rc = store__next(s, st, audit_cols,
				 (int)(sizeof audit_cols / sizeof audit_cols[0]),
				 &r, "listing the audit log")) == 1)
		if ((rc = cb(&r, ud)) != 0) {
			sqlite3_reset(st);
			break;
		}
	return rc;
}
