/*
 * test_synth.c - the synthetic corpus: deterministic per seed, plain text,
 * and learnable: one byte of context already lowers the entropy, and the
 * generator's own entropy rate (the loss floor) is far below both.
 */
#include "synth.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>

enum { N = 1 << 20 };

static void test_deterministic_per_seed(void)
{
	uint8_t *a = malloc(N), *b = malloc(N), *c = malloc(N);
	synth_generate(a, N, 1);
	synth_generate(b, N, 1);
	synth_generate(c, N, 2);
	TT_CHECK(memcmp(a, b, N) == 0);
	TT_CHECK(memcmp(a, c, N) != 0);
	/* A shorter corpus is a prefix of a longer one. */
	synth_generate(b, 1000, 1);
	TT_CHECK(memcmp(a, b, 1000) == 0);
	free(a);
	free(b);
	free(c);
}

static void test_plain_text_lines(void)
{
	uint8_t *a = malloc(N);
	synth_generate(a, N, 9);
	int ok = 1;
	size_t lines = 0;
	for (size_t i = 0; i < N; i++) {
		ok &= (a[i] >= ' ' && a[i] < 127) || a[i] == '\n';
		lines += a[i] == '\n';
	}
	TT_CHECK(ok);
	TT_CHECK(lines > N / 1000); /* documents are a few hundred bytes */
	TT_CHECK(a[0] >= 'A' && a[0] <= 'Z'); /* a document opens with a name */
	free(a);
}

static void test_entropy_ordering(void)
{
	uint8_t *a = malloc(N);
	for (uint64_t seed = 1; seed <= 4; seed++) {
		double floor_nats, h1, h2;
		synth_generate_ex(a, N, seed, &floor_nats);
		synth_entropy(a, N, &h1, &h2);
		fprintf(stderr, "seed %llu: unigram %.3f bigram %.3f floor %.3f nats/byte\n",
			(unsigned long long)seed, h1, h2, floor_nats);
		TT_CHECK(h2 < h1 - 0.5);
		TT_CHECK(floor_nats > 0.1 && floor_nats < h2 / 2);
		TT_CHECK(h1 > 2.0 && h1 < log(64));
	}
	free(a);
}

static void test_entropy_known_values(void)
{
	/* Two bytes alternating: H(X) = ln 2, H(X_t | X_t-1) = 0. */
	uint8_t alt[1000];
	double h1, h2;
	for (int i = 0; i < 1000; i++)
		alt[i] = (uint8_t)(i % 2 ? 'b' : 'a');
	synth_entropy(alt, sizeof alt, &h1, &h2);
	TT_CHECK(fabs(h1 - log(2)) < 1e-9);
	TT_CHECK(fabs(h2) < 1e-9);
	synth_entropy(alt, 1, &h1, &h2);
	TT_CHECK(h1 == 0 && isnan(h2));
}

int main(void)
{
	TT_RUN(test_deterministic_per_seed);
	TT_RUN(test_plain_text_lines);
	TT_RUN(test_entropy_ordering);
	TT_RUN(test_entropy_known_values);
	return TT_DONE();
}
