/* SPDX-License-Identifier: MIT */
/* The README's quick start, line for line from the first #include on:
 * train a flow on two moons, score held-out points, draw new ones.
 * Build against an installed copy:
 *   cc quickstart.c $(pkg-config --cflags --libs nvpflow) -o quickstart */
#include <nvpflow.h>
#include <stdio.h>
#include <stdlib.h>

/* Stop with the library's message when a call fails. */
#define CHECK(call) do { int rc_ = (call); if (rc_) { \
    fprintf(stderr, "%s: %s\n", nvp_strerror(rc_), nvp_errmsg()); \
    exit(1); } } while (0)

int main(void)
{
    enum { N = 2000 };
    static float train[N * 2], test[N * 2], lp[N], xy[3 * 2];
    const size_t hidden[2] = {64, 64};
    nvp_rng *rng;
    nvp_scaler *scaler;
    nvp_chain *flow;
    nvp_adam *adam;
    float loss;

    CHECK(nvp_rng_create(&rng, 42, NULL));
    CHECK(nvp_two_moons(rng, N, 0.05f, train, NULL));   /* training rows */
    CHECK(nvp_two_moons(rng, N, 0.05f, test, NULL));    /* held-out rows */
    CHECK(nvp_scaler_create(&scaler, 2, NULL));         /* standardiser */
    CHECK(nvp_scaler_fit(scaler, N, train));
    CHECK(nvp_scaler_transform(scaler, N, train, train));
    CHECK(nvp_scaler_transform(scaler, N, test, test));

    /* 4 couplings with alternating masks, conditioners 1 -> 64 -> 64 -> 2 */
    CHECK(nvp_chain_create_alternating(&flow, 2, 4, 2, hidden, 0, rng, NULL));
    CHECK(nvp_adam_create(&adam, nvp_chain_num_params(flow), NULL));
    for (int step = 1; step <= 10000; step++) {
        if (step == 8001)              /* step size 1e-3 (default), then 1e-4 */
            CHECK(nvp_adam_set_lr(adam, 1e-4f));
        CHECK(nvp_chain_train_step(flow, adam, rng, N, train, 100, &loss));
    }

    CHECK(nvp_chain_log_prob(flow, N, test, lp));       /* log densities */
    double nll = 0.0;
    for (int i = 0; i < N; i++)
        nll -= lp[i] / N;
    printf("held-out NLL %.3f nats (last minibatch %.3f)\n", nll, loss);

    CHECK(nvp_chain_sample(flow, rng, 3, xy, NULL));    /* 3 new points */
    CHECK(nvp_scaler_inverse_transform(scaler, 3, xy, xy)); /* in data units */
    for (int i = 0; i < 3; i++)
        printf("sample: %7.3f %7.3f\n", xy[2 * i], xy[2 * i + 1]);

    nvp_adam_free(adam);
    nvp_chain_free(flow);
    nvp_scaler_free(scaler);
    nvp_rng_free(rng);
    return 0;
}
