/*
 * synth.c - the synthetic corpus: a seeded lexicon, a small sentence
 * grammar with agreement, copied names and counting, and the bookkeeping
 * of every choice's probability that yields the corpus's entropy rate.
 *
 * All words in the lexicon are distinct and names are capitalized, so the
 * text determines the choices that made it: the sum of the choices' -log p
 * is then exactly the text's information (up to rare name collisions), and
 * its average per byte is the loss floor.
 */
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N_NOUN = 48, N_VERB = 32, N_ADJ = 24, N_PLACE = 12, WORD_CAP = 16 };

typedef struct gen {
	uint64_t rng;
	double nats; /* -log p of every choice so far */
	char noun[N_NOUN][WORD_CAP], verb[N_VERB][WORD_CAP];
	char adj[N_ADJ][WORD_CAP], place[N_PLACE][WORD_CAP];
	char name[2][WORD_CAP];
	char *doc;   /* the document being built */
	size_t len, cap;
} gen;

static const char consonants[] = "bdfgklmnprstvz";
static const char vowels[] = "aeiou";
static const char *const numbers[] = {"one", "two", "three", "four", "five",
	"six", "seven", "eight", "nine", "ten", "eleven", "twelve"};
static const char *const det_one[] = {"a", "this", "one", "that"};
static const char *const det_many[] = {"some", "these", "two", "those"};

static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A uniform choice in [0, n), charged log(n) nats. */
static size_t pick(gen *g, size_t n)
{
	g->nats += log((double)n);
	return (size_t)(((unsigned __int128)next_rand(&g->rng) * n) >> 64);
}

/* A pseudo-word of 1-3 consonant-vowel syllables (uncharged: lexicon). */
static void make_word(uint64_t *rng, char *w, int min_syl)
{
	int syl = min_syl + (int)(next_rand(rng) % (uint64_t)(4 - min_syl));
	for (int i = 0; i < syl; i++) {
		*w++ = consonants[next_rand(rng) % (sizeof consonants - 1)];
		*w++ = vowels[next_rand(rng) % (sizeof vowels - 1)];
	}
	*w = '\0';
}

/* The grammar's own words, which the lexicon must not reuse. */
static const char *const reserved[] = {"a", "this", "one", "that", "some",
	"these", "two", "those", "the", "and", "went", "to", "then", "gave",
	"counted", "in", "end", "thanked", "three", "four", "five", "six",
	"seven", "eight", "nine", "ten", "eleven", "twelve"};

static int seen(char (*words)[WORD_CAP], int n, const char *w)
{
	for (int i = 0; i < n; i++)
		if (strcmp(words[i], w) == 0)
			return 1;
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		if (strcmp(reserved[i], w) == 0)
			return 1;
	return 0;
}

/* Fills the lexicon, every word distinct across all its classes (one table
 * holds them all while drawing, so a repeat anywhere is redrawn). */
static void make_lexicon(gen *g, uint64_t seed)
{
	char all[N_NOUN + N_VERB + N_ADJ + N_PLACE][WORD_CAP];
	uint64_t rng = seed ^ 0x5eed1e8c0ffeeULL;
	int n = 0;
	while (n < (int)(sizeof all / sizeof all[0])) {
		make_word(&rng, all[n], n < N_NOUN + N_VERB + N_ADJ ? 1 : 2);
		if (!seen(all, n, all[n]))
			n++;
	}
	memcpy(g->noun, all, sizeof g->noun);
	memcpy(g->verb, all + N_NOUN, sizeof g->verb);
	memcpy(g->adj, all + N_NOUN + N_VERB, sizeof g->adj);
	memcpy(g->place, all + N_NOUN + N_VERB + N_ADJ, sizeof g->place);
}

static void put(gen *g, const char *s)
{
	size_t n = strlen(s);
	if (g->len + n <= g->cap) {
		memcpy(g->doc + g->len, s, n);
		g->len += n;
	}
}

/* A fresh capitalized name of 2-3 syllables, charged for every choice. */
static void make_name(gen *g, char *w)
{
	int syl = 2 + (int)pick(g, 2);
	for (int i = 0; i < syl; i++) {
		w[2 * i] = consonants[pick(g, sizeof consonants - 1)];
		w[2 * i + 1] = vowels[pick(g, sizeof vowels - 1)];
	}
	w[2 * syl] = '\0';
	w[0] = (char)(w[0] - 'a' + 'A');
}

/* "DET [ADJ] NOUN"; returns whether it is plural. */
static int noun_phrase(gen *g)
{
	int plural = (int)pick(g, 2);
	put(g, plural ? det_many[pick(g, 4)] : det_one[pick(g, 4)]);
	put(g, " ");
	if (pick(g, 2)) {
		put(g, g->adj[pick(g, N_ADJ)]);
		put(g, " ");
	}
	put(g, g->noun[pick(g, N_NOUN)]);
	if (plural)
		put(g, "s");
	return plural;
}

/* The verb agrees with the subject: -s exactly when it is singular. */
static void verb(gen *g, int plural)
{
	put(g, g->verb[pick(g, N_VERB)]);
	if (!plural)
		put(g, "s");
}

static void sentence(gen *g)
{
	size_t kind = pick(g, 4);
	int who = kind ? (int)pick(g, 2) : 0; /* kind 0 names no one */
	switch (kind) {
	case 0: { /* these red bomas tiku a ruvo */
		int plural = noun_phrase(g);
		put(g, " ");
		verb(g, plural);
		put(g, " ");
		noun_phrase(g);
		break;
	}
	case 1: /* Kovada tikus the ruvo */
		put(g, g->name[who]);
		put(g, " ");
		verb(g, 0);
		put(g, " the ");
		put(g, g->noun[pick(g, N_NOUN)]);
		break;
	case 2: /* then Kovada gave Zelumi the ruvo */
		put(g, "then ");
		put(g, g->name[who]);
		put(g, " gave ");
		put(g, g->name[!who]);
		put(g, " the ");
		put(g, g->noun[pick(g, N_NOUN)]);
		break;
	default: { /* Kovada counted three four five */
		size_t start = pick(g, 6), len = 3 + pick(g, 4);
		put(g, g->name[who]);
		put(g, " counted");
		for (size_t i = 0; i < len; i++) {
			put(g, " ");
			put(g, numbers[start + i]);
		}
	}
	}
	put(g, ". ");
}

static void document(gen *g)
{
	g->len = 0;
	make_name(g, g->name[0]);
	make_name(g, g->name[1]);
	put(g, g->name[0]);
	put(g, " and ");
	put(g, g->name[1]);
	put(g, " went to the ");
	put(g, g->place[pick(g, N_PLACE)]);
	put(g, ". ");
	for (size_t i = 0, n = 3 + pick(g, 6); i < n; i++)
		sentence(g);
	put(g, "in the end ");
	put(g, g->name[1]);
	put(g, " thanked ");
	put(g, g->name[0]);
	put(g, ".\n");
}

void synth_generate_ex(uint8_t *out, size_t n, uint64_t seed, double *floor_nats)
{
	char doc[4096]; /* a document is at most ~700 bytes */
	gen g = {.rng = seed, .doc = doc, .cap = sizeof doc};
	size_t done = 0, made = 0;

	make_lexicon(&g, seed);
	while (done < n) {
		document(&g);
		size_t take = g.len < n - done ? g.len : n - done;
		memcpy(out + done, doc, take);
		done += take;
		made += g.len;
	}
	if (floor_nats)
		*floor_nats = made ? g.nats / (double)made : 0;
}

void synth_generate(uint8_t *out, size_t n, uint64_t seed)
{
	synth_generate_ex(out, n, seed, NULL);
}

/* Sum of -p log p over counts that total n. */
static double entropy_of(const uint64_t *count, size_t k, double n)
{
	double h = 0;
	for (size_t i = 0; i < k; i++)
		if (count[i])
			h -= (double)count[i] / n * log((double)count[i] / n);
	return h;
}

void synth_entropy(const uint8_t *buf, size_t n, double *unigram, double *bigram)
{
	uint64_t one[256] = {0}, prev[256] = {0};
	uint64_t *pair = calloc(256 * 256, sizeof *pair);

	for (size_t i = 0; i < n; i++)
		one[buf[i]]++;
	*unigram = entropy_of(one, 256, (double)n);
	*bigram = NAN; /* stays so only when out of memory or n < 2 */
	if (!pair || n < 2)
		goto done;
	for (size_t i = 1; i < n; i++) {
		pair[buf[i - 1] * 256 + buf[i]]++;
		prev[buf[i - 1]]++;
	}
	/* H(X_t | X_t-1) = H(X_t-1, X_t) - H(X_t-1) */
	*bigram = entropy_of(pair, 256 * 256, (double)(n - 1)) -
		  entropy_of(prev, 256, (double)(n - 1));
done:
	free(pair);
}
