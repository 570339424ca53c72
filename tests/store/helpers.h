/*
 * helpers.h - what the store tests share: a scratch directory per test
 * binary, removing it, raw SQLite access that goes around the store (to
 * tamper with a file or hold its lock), and reading a file's bytes.
 */
#ifndef STORE_TEST_HELPERS_H
#define STORE_TEST_HELPERS_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* Removes dir and everything under it. */
static inline void th_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under /tmp; the program exits 1 when none can be
 * made (nothing can be tested then). */
static inline void th_tmpdir(char out[64])
{
	snprintf(out, 64, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(out)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* dir/name into out. */
static inline const char *th_path(char *out, size_t cap, const char *dir,
			   const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
	return out;
}

/* Runs sql on its own connection to path (no store involved). */
static inline int th_raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "raw sql failed: %s\n", db ? sqlite3_errmsg(db)
			: "no connection");
	sqlite3_close(db);
	return rc;
}

/* One integer from a query on its own connection; -999 on failure. */
static inline long long th_raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -999;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The whole file in a malloc'd buffer (caller frees); NULL if unreadable. */
static inline char *th_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;

	*n = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
	    fread(buf, 1, (size_t)len, f) == (size_t)len)
		*n = (size_t)len;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

#endif
