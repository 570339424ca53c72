/*
 * synth.h - a seeded synthetic corpus with structure a small transformer
 * can learn, so tests, benchmarks and the demo train without a download.
 *
 * Byte-level (vocabulary 256, plain lowercase ASCII text). The seed fixes a
 * lexicon of pseudo-words (nouns, verbs, adjectives, places) built from
 * syllables; documents, one per line, are made of sentences that need:
 *   - the lexicon (spelling inside words),
 *   - agreement ("these bomas tiku a ruvo" vs "this boma tikus a ruvo":
 *     the verb takes -s exactly when its subject is singular),
 *   - copying: each document introduces two fresh random names and later
 *     sentences reuse them ("then Kovada gave Zelumi the boma"), closing with
 *     the two names swapped, which only an induction-style copy predicts,
 *   - counting: runs of number words in order ("three four five six").
 *
 * The generator knows the probability of every choice it makes, so it can
 * report its own entropy rate: the loss (nats per byte) of a perfect model,
 * a floor a trained model approaches but cannot beat. See synth_generate_ex.
 * Measured over 1 MiB for seeds 1-4 (`tend data synth` prints them):
 * unigram entropy 2.99, bigram 2.03-2.04, floor 0.35 nats/byte. A small
 * transformer that learns the lexicon and agreement gets well under the
 * bigram figure; copying the names is what takes it towards the floor.
 */
#ifndef SYNTH_H
#define SYNTH_H

#include <stddef.h>
#include <stdint.h>

#define SYNTH_VOCAB 256

/* Fills out[0..n) with the corpus for seed; the same (n, seed) always gives
 * the same bytes, and a shorter n gives a prefix of a longer one. */
void synth_generate(uint8_t *out, size_t n, uint64_t seed);

/* As synth_generate, and stores the generator's entropy rate in nats per
 * byte over what it generated (the loss floor) in *floor_nats. */
void synth_generate_ex(uint8_t *out, size_t n, uint64_t seed, double *floor_nats);

/* Empirical entropies of buf in nats per byte: the unigram entropy H(X)
 * (the loss of a model that knows only byte frequencies) and the bigram
 * conditional entropy H(X_t | X_t-1) (one byte of context). bigram is NAN
 * when n < 2 or memory runs out. */
void synth_entropy(const uint8_t *buf, size_t n, double *unigram, double *bigram);

#endif
