/* SPDX-License-Identifier: MIT */
/* The thread pool's stress run (tests/pool_stress.h) under
 * ThreadSanitizer (`make test-tsan`): besides every task running exactly
 * once, TSan checks that the pool orders plain memory as a caller needs:
 * what the caller wrote before a job is seen by the tasks, and what the
 * tasks wrote is seen by the caller after the job, without a data race.
 * Usage: test_pool [jobs]; exits 0 when all is well. */
#include <stdio.h>
#include <stdlib.h>

#include "../pool_stress.h"

int main(int argc, char **argv)
{
    const long jobs = argc > 1 ? atol(argv[1]) : 20000;
    char msg[256];
    for (size_t threads = 2; threads <= 3; threads++)
        if (pool_stress(threads, jobs, 4200 + threads, msg, sizeof msg)) {
            fprintf(stderr, "test_pool: %s\n", msg);
            return 1;
        }
    printf("test_pool: %ld jobs on pools of 2 and 3 threads: every task ran "
           "exactly once, and every job ended after its tasks\n",
           jobs);
    return 0;
}
