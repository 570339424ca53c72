/*
 * cmd_data.c - `tend data prepare|synth|inspect`: text files or the
 * synthetic corpus into byte-level llm.c token shards (vocabulary 256),
 * and a validating look at shards that exist.
 *
 * Shards are named <split>_000.bin, <split>_001.bin, ... and written
 * atomically; prepare and synth refuse a directory that already holds
 * shards, because mixing two datasets' shards would go unnoticed.
 */
#include "cli.h"
#include "fsutil.h"
#include "shard.h"
#include "synth.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SHARD_TOKENS 100000000L /* llm.c's: 200 MB per shard */
#define MAX_SHARDS 1000                 /* names stay in sorted order */

extern const cli_cmd cli_data_cmd;

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "tend data: <why>" and the help to stderr; returns CLI_USAGE. */
static int usage(const char *fmt, ...)
{
	va_list ap;
	fputs("tend data: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	cli_print_help(stderr, &cli_data_cmd);
	return CLI_USAGE;
}

/* ---- writing shards of one split as the tokens arrive ---- */

typedef struct sink {
	const char *dir, *split;
	uint16_t *buf;
	size_t n, cap, max;  /* tokens held, allocated, per shard */
	int shards;
	size_t total;
} sink;

static int sink_flush(sink *s)
{
	char path[PATH_MAX];
	if (!s->n)
		return 0;
	if (s->shards >= MAX_SHARDS)
		return tend_error_set(TEND_EINVAL, "more than %d %s shards: raise "
				      "--shard-tokens", MAX_SHARDS, s->split);
	if (snprintf(path, sizeof path, "%s/%s_%03d.bin", s->dir, s->split,
		     s->shards) >= (int)sizeof path)
		return tend_error_set(TEND_EINVAL, "%s: path too long", s->dir);
	int rc = shard_write(path, s->buf, s->n);
	if (rc < 0)
		return rc;
	printf("wrote %s: %zu tokens\n", path, s->n);
	s->shards++;
	s->total += s->n;
	s->n = 0;
	return 0;
}

static int sink_put(sink *s, const uint8_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s->n == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 1 << 16;
			cap = cap < s->max ? cap : s->max;
			uint16_t *b = realloc(s->buf, cap * sizeof *b);
			if (!b)
				return tend_error_set(TEND_ENOMEM, "out of memory");
			s->buf = b;
			s->cap = cap;
		}
		s->buf[s->n++] = bytes[i];
		if (s->n == s->max) {
			int rc = sink_flush(s);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* ---- options ---- */

typedef struct opts {
	const char *out;
	double val_fraction;
	long shard_tokens, tokens;
	uint64_t seed;
	int vocab;
	char **inputs;
	int ninputs;
} opts;

static int parse_long(const char *s, long lo, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo)
		return -1;
	*out = v;
	return 0;
}

/* 1 when option a is one of the space-separated names in list. */
static int allowed(const char *list, const char *a)
{
	size_t n = strlen(a);
	for (const char *p = list; (p = strstr(p, a)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return 1;
	return 0;
}

/* Parses argv[1..] into o, accepting the options named in list;
 * positional arguments go to o->inputs. Returns 0 or CLI_USAGE (having
 * printed why). */
static int parse_opts(int argc, char **argv, const char *list, opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n;
		if (a[0] != '-') {
			o->inputs[o->ninputs++] = argv[i];
			continue;
		}
		if (!allowed(list, a))
			return usage("unknown option %s", a);
		if (!v)
			return usage("%s needs a value", a);
		i++;
		if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
			o->out = v;
		} else if (strcmp(a, "--val-fraction") == 0) {
			char *end;
			o->val_fraction = strtod(v, &end);
			if (*end || end == v || !(o->val_fraction >= 0 && o->val_fraction < 1))
				return usage("--val-fraction wants a number in [0, 1), not %s", v);
		} else if (strcmp(a, "--shard-tokens") == 0) {
			if (parse_long(v, 1, &o->shard_tokens) < 0 || o->shard_tokens > INT32_MAX)
				return usage("--shard-tokens wants 1..2147483647, not %s", v);
		} else if (strcmp(a, "--tokens") == 0) {
			if (parse_long(v, 2, &o->tokens) < 0)
				return usage("--tokens wants a count of at least 2, not %s", v);
		} else if (strcmp(a, "--seed") == 0) {
			if (parse_long(v, 0, &n) < 0)
				return usage("--seed wants a non-negative integer, not %s", v);
			o->seed = (uint64_t)n;
		} else if (strcmp(a, "--vocab") == 0) {
			if (parse_long(v, 1, &n) < 0 || n > 65536)
				return usage("--vocab wants 1..65536, not %s", v);
			o->vocab = (int)n;
		}
	}
	return 0;
}

/* 1 when name is <split>_*.bin for a split we write. */
static int is_our_shard(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && strcmp(name + n - 4, ".bin") == 0 &&
	       (strncmp(name, "train_", 6) == 0 || strncmp(name, "val_", 4) == 0);
}

/* Creates dir, refusing one that already holds train or val shards. */
static int prepare_dir(const char *dir)
{
	int rc = fsu_mkdir_p(dir, 0755);
	if (rc < 0)
		return rc;
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return tend_error_os("%s", dir);
	while ((e = readdir(d)) && !is_our_shard(e->d_name))
		;
	if (e)
		rc = tend_error_set(TEND_EEXISTS, "%s already holds shards (%s); "
				    "remove them or choose another -o", dir, e->d_name);
	closedir(d);
	return rc;
}

static void summary(const sink *train, const sink *val)
{
	printf("train: %zu tokens in %d shard%s; val: %zu tokens in %d shard%s\n",
	       train->total, train->shards, train->shards == 1 ? "" : "s",
	       val->total, val->shards, val->shards == 1 ? "" : "s");
}

/* ---- prepare ---- */

/* Streams one file: its last val_fraction of bytes go to val. */
static int prepare_file(const char *path, double frac, sink *train, sink *val)
{
	static uint8_t buf[1 << 20];
	struct stat st;
	int rc = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return tend_error_os("%s", path);
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return tend_error_set(TEND_EINVAL, "%s: not a regular file", path);
	}
	size_t size = (size_t)st.st_size, at = 0;
	size_t val_at = size - (size_t)floor((double)size * frac);
	while (rc == 0 && at < size) {
		size_t got = fread(buf, 1, sizeof buf, f);
		if (got == 0) {
			rc = ferror(f) ? tend_error_os("%s", path) : 0;
			break;
		}
		size_t cut = at < val_at ? val_at - at : 0;
		cut = cut < got ? cut : got;
		rc = sink_put(train, buf, cut);
		if (rc == 0)
			rc = sink_put(val, buf + cut, got - cut);
		at += got;
	}
	fclose(f);
	return rc;
}

static int check_input(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return tend_error_os("%s", path);
	if (!S_ISREG(st.st_mode))
		return tend_error_set(TEND_EINVAL, "%s: not a regular file", path);
	if (access(path, R_OK) < 0)
		return tend_error_os("%s", path);
	return 0;
}

static int data_prepare(int argc, char **argv)
{
	char *inputs[argc];
	opts o = {.val_fraction = 0.1, .shard_tokens = DEFAULT_SHARD_TOKENS,
		  .inputs = inputs};
	int rc = parse_opts(argc, argv, "-o --output --val-fraction --shard-tokens", &o);
	if (rc)
		return rc;
	if (!o.out)
		return usage("prepare needs -o DIR");
	if (!o.ninputs)
		return usage("prepare needs at least one INPUT file");
	sink train = {.dir = o.out, .split = "train", .max = (size_t)o.shard_tokens};
	sink val = {.dir = o.out, .split = "val", .max = (size_t)o.shard_tokens};
	/* Every input is checked before anything is written, so a typo does
	 * not leave half a dataset behind. */
	for (int i = 0; rc == 0 && i < o.ninputs; i++)
		rc = check_input(o.inputs[i]);
	if (rc < 0 || (rc = prepare_dir(o.out)) < 0)
		goto done;
	for (int i = 0; rc == 0 && i < o.ninputs; i++)
		rc = prepare_file(o.inputs[i], o.val_fraction, &train, &val);
	if (rc == 0 && (rc = sink_flush(&train)) == 0)
		rc = sink_flush(&val);
	if (rc == 0)
		summary(&train, &val);
done:
	free(train.buf);
	free(val.buf);
	return rc < 0 ? cli_fail(CLI_FAIL, "data prepare") : CLI_OK;
}

/* ---- synth ---- */

static int data_synth(int argc, char **argv)
{
	char *inputs[argc];
	opts o = {.val_fraction = 0.1, .shard_tokens = DEFAULT_SHARD_TOKENS,
		  .tokens = 10000000, .seed = 1, .inputs = inputs};
	uint8_t *text = NULL;
	double floor_nats, h1, h2;
	int rc = parse_opts(argc, argv, "-o --output --val-fraction --shard-tokens "
			    "--tokens --seed", &o);
	if (rc)
		return rc;
	if (!o.out)
		return usage("synth needs -o DIR");
	if (o.ninputs)
		return usage("synth takes no input files (got %s)", o.inputs[0]);
	sink train = {.dir = o.out, .split = "train", .max = (size_t)o.shard_tokens};
	sink val = {.dir = o.out, .split = "val", .max = (size_t)o.shard_tokens};
	size_t n = (size_t)o.tokens, nval = (size_t)floor((double)n * o.val_fraction);
	if (!(text = malloc(n))) {
		rc = tend_error_set(TEND_ENOMEM, "%zu bytes: out of memory", n);
		goto done;
	}
	synth_generate_ex(text, n, o.seed, &floor_nats);
	synth_entropy(text, n, &h1, &h2);
	if ((rc = prepare_dir(o.out)) < 0 || (rc = sink_put(&train, text, n - nval)) < 0 ||
	    (rc = sink_flush(&train)) < 0 || (rc = sink_put(&val, text + n - nval, nval)) < 0 ||
	    (rc = sink_flush(&val)) < 0)
		goto done;
	summary(&train, &val);
	printf("seed %llu; nats per byte (bits in brackets):\n"
	       "  unigram entropy  %.3f (%.3f)  loss of byte frequencies alone\n"
	       "  bigram entropy   %.3f (%.3f)  loss with one byte of context\n"
	       "  generator floor  %.3f (%.3f)  loss of a perfect model\n",
	       (unsigned long long)o.seed, h1, h1 / log(2), h2, h2 / log(2),
	       floor_nats, floor_nats / log(2));
done:
	free(text);
	free(train.buf);
	free(val.buf);
	return rc < 0 ? cli_fail(CLI_FAIL, "data synth") : CLI_OK;
}

/* ---- inspect ---- */

/* Validates one shard and prints a line; returns 0 or the error. */
static int inspect_one(const char *path, int vocab, size_t *ntok)
{
	shard *s = NULL;
	int rc = shard_open(&s, path, vocab);
	if (rc < 0) {
		fprintf(stderr, "tend: %s\n", tend_error_last());
		return rc;
	}
	const uint16_t *t = shard_tokens(s);
	unsigned max = 0;
	for (size_t i = 0; i < shard_len(s); i++)
		max = t[i] > max ? t[i] : max;
	*ntok = shard_len(s);
	printf("%s: llm.c shard v%d, %zu tokens, max token %u\n", path,
	       SHARD_VERSION, *ntok, *ntok ? max : 0);
	shard_free(s);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Inspects every *.bin in dir, in name order; 0 when all are good. */
static int inspect_dir(const char *dir, int vocab)
{
	char **names = NULL, path[PATH_MAX];
	size_t n = 0, total = 0, ntok;
	int bad = 0, rc = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return tend_error_os("%s", dir);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".bin") != 0)
			continue;
		char **p = realloc(names, (n + 1) * sizeof *p);
		if (!p || !(p[n] = strdup(e->d_name))) {
			names = p ? p : names;
			rc = tend_error_set(TEND_ENOMEM, "out of memory");
			break;
		}
		names = p;
		n++;
	}
	closedir(d);
	if (rc == 0 && n == 0)
		rc = tend_error_set(TEND_ENOTFOUND, "%s: no .bin shards", dir);
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (inspect_one(path, vocab, &ntok) < 0)
			bad++;
		else
			total += ntok;
	}
	if (rc == 0)
		printf("%zu shards, %zu tokens%s\n", n, total,
		       bad ? "" : ", all valid");
	if (rc == 0 && bad)
		rc = tend_error_set(TEND_EINVAL, "%d of %zu shards in %s are invalid",
				    bad, n, dir);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int data_inspect(int argc, char **argv)
{
	char *inputs[argc];
	opts o = {.vocab = 65536, .inputs = inputs};
	struct stat st;
	size_t ntok;
	int rc = parse_opts(argc, argv, "--vocab", &o);
	if (rc)
		return rc;
	if (o.ninputs != 1)
		return usage("inspect wants one FILE or DIR");
	if (stat(o.inputs[0], &st) < 0) {
		tend_error_os("%s", o.inputs[0]);
		return cli_fail(CLI_FAIL, "data inspect");
	}
	if (!S_ISDIR(st.st_mode))
		return inspect_one(o.inputs[0], o.vocab, &ntok) < 0 ? CLI_FAIL : CLI_OK;
	if (inspect_dir(o.inputs[0], o.vocab) < 0)
		return cli_fail(CLI_FAIL, "data inspect");
	return CLI_OK;
}

static int cmd_data(int argc, char **argv)
{
	if (argc < 2)
		return usage("which: prepare, synth or inspect?");
	if (strcmp(argv[1], "prepare") == 0)
		return data_prepare(argc - 1, argv + 1);
	if (strcmp(argv[1], "synth") == 0)
		return data_synth(argc - 1, argv + 1);
	if (strcmp(argv[1], "inspect") == 0)
		return data_inspect(argc - 1, argv + 1);
	return usage("no subcommand '%s'", argv[1]);
}

const cli_cmd cli_data_cmd = {
	"data", "make and check token shards: prepare, synth, inspect",
	"usage: tend data prepare INPUT... -o DIR [--val-fraction F] [--shard-tokens N]\n"
	"       tend data synth -o DIR [--tokens N] [--seed S] [--val-fraction F]\n"
	"                       [--shard-tokens N]\n"
	"       tend data inspect FILE|DIR [--vocab N]\n\n"
	"prepare turns text files into byte-level llm.c token shards (vocabulary\n"
	"256) in DIR: the last F (default 0.1) of each file's bytes go to\n"
	"val_000.bin..., the rest to train_000.bin..., at most N tokens per shard\n"
	"(default 100000000). DIR is created; one that already holds shards is\n"
	"refused.\n\n"
	"synth writes N bytes (default 10000000) of the seeded synthetic corpus\n"
	"(seed default 1) as shards the same way, and prints its unigram and\n"
	"bigram entropy and the generator's own entropy rate: the loss floor a\n"
	"perfect model reaches, in nats per byte.\n\n"
	"inspect validates one shard, or every *.bin in DIR: magic, version,\n"
	"exact size, and each token below the vocabulary (default 65536), and\n"
	"prints token counts. Exits 1 when any shard is invalid, saying why.\n",
	cmd_data,
};
