/*
 * ckpt.h - the trainer's checkpoint file: format, atomic writer, verifying
 * reader, and the checkpoints directory (naming, listing, retention).
 *
 * Format (all integers little-endian; version 1):
 *
 *   0   "TENDCKPT"                 magic, 8 bytes
 *   8   u32 format version         (CKPT_VERSION)
 *   12  u32 header bytes           offset of the first section's data
 *   16  u64 file bytes             total, including the checksum
 *   24  i64 step
 *   32  u32 section count
 *   36  u32 0                      reserved
 *   40  u32 x 5 lengths            config, meta, rng, cursor, commit
 *   60  u32 0                      reserved
 *   64  the five blobs, back to back (config and meta are key=value lines)
 *       the section table: per section u16 name length, the name, u8 dtype
 *       (1 = f32), u64 element count, u64 absolute data offset
 *       zero padding to a multiple of 64
 *   ..  section data, each starting on a 64-byte boundary
 *   end-32  SHA-256 of every byte before it
 *
 * A reader verifies magic, version, size and checksum before it parses the
 * table, so nothing in a damaged file is ever used. Sections are stored by
 * the writer from the caller's pointers (no copy of a model's state) and
 * read back through a read-only mapping (no copy either).
 */
#ifndef CKPT_H
#define CKPT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 1
#define CKPT_MAGIC "TENDCKPT"
#define CKPT_NAME_FMT "ckpt-%08ld.bin" /* the file name for a step */

typedef struct ckpt_writer ckpt_writer;
typedef struct ckpt ckpt;

/* ---- writing ---- */

/* A writer for the checkpoint of step. Free with ckpt_writer_free. */
int ckpt_writer_new(ckpt_writer **out, long step);
void ckpt_writer_free(ckpt_writer *w);

/* The model config as key=value lines (copied). ckpt_check_config compares
 * against it, so it should hold exactly what shapes the sections. */
int ckpt_writer_config(ckpt_writer *w, const char *text);

/* Appends key=value to the free-form metadata (copied); read it back with
 * ckpt_meta. Keys may not contain '=' or newlines, values no newlines. */
int ckpt_writer_meta(ckpt_writer *w, const char *key, const char *value);

/* Opaque blobs (copied): the RNG state(s) and the data loader's cursor. */
int ckpt_writer_rng(ckpt_writer *w, const void *data, size_t n);
int ckpt_writer_cursor(ckpt_writer *w, const void *data, size_t n);

/* The scaffold commit id the run was using (copied). */
int ckpt_writer_commit(ckpt_writer *w, const char *commit);

/* Adds a named f32 section of n floats. Only the pointer is kept: data must
 * stay valid and unchanged until ckpt_write returns. Names are unique,
 * 1..255 bytes. */
int ckpt_writer_add(ckpt_writer *w, const char *name, const float *data, size_t n);

/* Writes the checkpoint to path atomically: a temp file in the same
 * directory, written, fsynced, renamed over path, the directory fsynced.
 * A crash at any moment leaves whatever was at path before intact. */
int ckpt_write(ckpt_writer *w, const char *path);

/* ---- reading ---- */

/* Opens and verifies the checkpoint at path: magic, version, exact size,
 * SHA-256, then the table. Errors start with "<path>: ": "truncated (N
 * bytes, header needs M)", "checksum mismatch: file is corrupt", "format
 * version 9 is newer than this tend (knows 1)", "not a tend checkpoint
 * (bad magic)". Free with ckpt_free. */
int ckpt_open(ckpt **out, const char *path);
void ckpt_free(ckpt *c);

long ckpt_step(const ckpt *c);

/* The section called name: *data points into the mapping (valid until
 * ckpt_free, read-only), *n is its element count. TEND_ENOTFOUND if none. */
int ckpt_section(const ckpt *c, const char *name, const float **data, size_t *n);

/* Copies section name into dst, which holds exactly n floats; refuses a
 * missing section or a different count with a message saying both. */
int ckpt_section_copy(const ckpt *c, const char *name, float *dst, size_t n);

/* Number of sections and the name of the i-th, in the order written. */
size_t ckpt_section_count(const ckpt *c);
const char *ckpt_section_name(const ckpt *c, size_t i);

/* The value of key in the metadata (ckpt_writer_meta), or NULL. Owned by c. */
const char *ckpt_meta(const ckpt *c, const char *key);

/* The value of key in the model config, or NULL. Owned by c. */
const char *ckpt_config_get(const ckpt *c, const char *key);

/* The raw config text, RNG blob, cursor blob and commit id; owned by c. */
const char *ckpt_config(const ckpt *c);
const void *ckpt_rng(const ckpt *c, size_t *n);
const void *ckpt_cursor(const ckpt *c, size_t *n);
const char *ckpt_commit(const ckpt *c);

/* 0 when config_text (key=value lines) has the same keys and values as the
 * checkpoint's config, blank lines, '#' comments and spaces around keys and
 * values ignored. Otherwise TEND_EINVAL naming the first differing key in
 * the checkpoint's order, e.g. "model config differs: n_layer is 12 in the
 * checkpoint, 6 now". */
int ckpt_check_config(const ckpt *c, const char *config_text);

/* ---- the checkpoints directory ---- */

typedef struct ckpt_entry {
	long step;
	char name[40]; /* file name inside the directory */
} ckpt_entry;

/* Writes "dir/ckpt-%08ld.bin" into out. */
int ckpt_path(char *out, size_t cap, const char *dir, long step);

/* The checkpoint files in dir (by name, unverified), newest step first, in
 * a malloc'd array the caller frees. A missing dir gives an empty list. */
int ckpt_list(const char *dir, ckpt_entry **out, size_t *n);

/* Finds the newest checkpoint with step < before_step whose checksum
 * verifies (LONG_MAX: any) and writes its path into path_out. Returns 0,
 * or TEND_ENOTFOUND when there is none. */
int ckpt_latest_good(const char *dir, long before_step, char *path_out, size_t cap);

/* Deletes the checkpoints in dir except: the keep_last newest, those whose
 * step is a multiple of keep_every (when > 0), the newest one, and the
 * newest one that verifies (found by verifying newest first; a file this
 * thread wrote with ckpt_write and that has not changed since counts as
 * verified without a read). Also removes temp files left by writers that
 * have died. The number deleted goes to *deleted when not NULL. */
int ckpt_retain(const char *dir, int keep_last, long keep_every, int *deleted);

/* ---- component-private: a file written atomically in pieces ---- */

typedef struct ckpt__afile {
	int fd;
	char path[PATH_MAX];
	char tmp[PATH_MAX];
} ckpt__afile;

/* Creates "<dir>/.<base>.tmp.<pid>" next to path. */
int ckpt__afile_open(ckpt__afile *f, const char *path);
int ckpt__afile_write(ckpt__afile *f, const void *buf, size_t n);
/* fsync, close, rename over path, fsync the directory. */
int ckpt__afile_commit(ckpt__afile *f);
/* Closes and removes the temp file; harmless after commit or twice. */
void ckpt__afile_abort(ckpt__afile *f);

#endif
