/* The thread pool under stress: every task of every job runs exactly
 * once, and a job is over only when all its tasks are (pool_stress.h). */
#include <check.h>

#include "pool_stress.h"
#include "tests.h"

START_TEST(test_pool_every_task_once)
{
    /* 2 and 3 participants; 3 oversubscribes a two-CPU machine, where a
     * worker is often descheduled in the middle of a job. */
    const size_t threads = (size_t)_i;
    char msg[256];
    const int bad = pool_stress(threads, 100000, 4100 + (uint64_t)_i, msg,
                                sizeof msg);
    ck_assert_msg(!bad, "%s", msg);
}
END_TEST

Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_pool_every_task_once, 2, 4);
    suite_add_tcase(s, tc);
    return s;
}
