/* SPDX-License-Identifier: MIT */
/* Runs every suite.  Check forks a child per test by default (CK_FORK=no
 * runs them in-process, e.g. under valgrind); CK_RUN_SUITE and CK_RUN_CASE
 * select a suite or a test case.  The output is CK_NORMAL (the summary
 * line and every failure) unless CK_VERBOSITY says otherwise
 * (CK_VERBOSITY=verbose lists every test). */
#include <stdlib.h>

#include "tests.h"

int main(void)
{
    SRunner *sr = srunner_create(rng_suite());
    srunner_add_suite(sr, base_suite());
    srunner_add_suite(sr, base_mixture_suite());
    srunner_add_suite(sr, gemm_suite());
    srunner_add_suite(sr, coupling_suite());
    srunner_add_suite(sr, chain_suite());
    srunner_add_suite(sr, grad_suite());
    srunner_add_suite(sr, adam_suite());
    srunner_add_suite(sr, data_suite());
    srunner_add_suite(sr, errors_suite());
    srunner_add_suite(sr, alloc_suite());
    srunner_add_suite(sr, io_suite());
    srunner_add_suite(sr, train_suite());
    srunner_add_suite(sr, pool_suite());
    srunner_add_suite(sr, sweep_suite());
    srunner_add_suite(sr, kernels_suite());
    srunner_add_suite(sr, layer_kinds_suite());
    srunner_add_suite(sr, memory_suite());
    srunner_add_suite(sr, conditional_suite());
    srunner_add_suite(sr, affine_form_suite());
    srunner_add_suite(sr, vjp_suite());
    srunner_add_suite(sr, precision_suite());
    srunner_add_suite(sr, grad_check_suite());
    srunner_add_suite(sr, exp_array_suite());
    srunner_run_all(sr, CK_ENV); /* CK_NORMAL when CK_VERBOSITY is unset */
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
