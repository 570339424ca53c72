/*
 * model_omp.h - private to the CPU trainer (layers.c, moe.c, gpt*.c): the
 * OpenMP pragma wrapper and the work threshold below which a loop runs on
 * one thread.
 *
 * Why the threshold: a parallel region costs a fork and a barrier, and on a
 * loaded machine a barrier waits for a descheduled thread for milliseconds;
 * tiny models (tests, gradient checks) would spend all their time there.
 */
#ifndef MODEL_OMP_H
#define MODEL_OMP_H

/* `#pragma omp` warns (and so fails) under -Wall when OpenMP is off. */
#define MODEL_OMP_STR(x) #x
#ifdef _OPENMP
#define OMP(x) _Pragma(MODEL_OMP_STR(omp x))
#else
#define OMP(x)
#endif

/* Loops with less work than this (in inner iterations) stay serial. */
#define MODEL_PAR_MIN 65536.0

/* For `OMP(parallel for if(PAR(work)))`. */
#define PAR(work) ((double)(work) >= MODEL_PAR_MIN)

#endif
