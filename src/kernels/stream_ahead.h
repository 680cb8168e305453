/* SPDX-License-Identifier: MIT */
/* Fetching ahead of a pass that streams a long vector from memory.
 *
 * The finiteness checks read whole parameter and gradient vectors (tens
 * of megabytes at D = 784) once each, with nothing to compute meanwhile.
 * The hardware prefetchers of some cores do not run far enough ahead of
 * one such stream to keep the memory busy: on Zen 5, taking the largest
 * magnitude of 36 MB read 21-36 GB/s alone, and 44-51 GB/s when each
 * block of NVP_STREAM_BLOCK floats first requested the lines 16 KiB
 * further on (8 and 32 KiB: 41-46 GB/s).  In the bfloat16 D = 784
 * gradient, whose two checks read 36 MB each, that made the call 2.5-3%
 * faster.  (The optimizer's update, given the same requests on its four
 * streams, got 11% slower: the tutorial's are in the cache.)  Prefetches
 * change no result. */
#ifndef NVP_STREAM_AHEAD_H
#define NVP_STREAM_AHEAD_H

#include <stddef.h>
#include <stdint.h>

/* Floats a pass takes between two requests: four 64-byte lines. */
#define NVP_STREAM_BLOCK 64
/* How far ahead it requests, in bytes. */
#define NVP_STREAM_AHEAD 16384
/* Vectors shorter than this many floats (16 MiB) are left to the
 * hardware: they are often still in a cache, where the requests only
 * cost (with the tutorial's 4 MiB of parameters fetched ahead, its step
 * was 1% slower on one thread).  A run of a longer vector that a thread
 * takes fetches as the whole vector would. */
#define NVP_STREAM_MIN_FLOATS ((size_t)1 << 22)

/* Requests the NVP_STREAM_BLOCK floats that lie NVP_STREAM_AHEAD bytes
 * past x + i (i within the vector).  The address is formed as an integer:
 * near the end it lies past the vector, where C forbids a pointer, and a
 * prefetch of any address is harmless. */
static inline __attribute__((always_inline)) void
nvp__stream_fetch(const float *x, size_t i)
{
    const uintptr_t at = (uintptr_t)(x + i) + NVP_STREAM_AHEAD;
    for (size_t line = 0; line < NVP_STREAM_BLOCK * sizeof(float);
         line += 64)
        __builtin_prefetch((const void *)(at + line), 0, 3);
}

#endif
