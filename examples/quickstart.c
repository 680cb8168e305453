/* SPDX-License-Identifier: MIT */
/* The README's quick start: train a small flow on two moons, sample from
 * it, score points, free everything.  Build against an installed copy:
 *   cc quickstart.c $(pkg-config --cflags --libs nvpflow) -o quickstart */
#include <nvpflow.h>
#include <stdio.h>

#define CHECK(call)                                                        \
    do {                                                                   \
        int rc_ = (call);                                                  \
        if (rc_) {                                                         \
            fprintf(stderr, "%s: %s\n", nvp_strerror(rc_), nvp_errmsg());  \
            return 1;                                                      \
        }                                                                  \
    } while (0)

int main(void)
{
    static float data[2000 * 2], samples[5 * 2], lp[5];
    nvp_rng *rng;
    nvp_chain *flow;
    nvp_adam *adam;
    const size_t hidden[2] = {64, 64};
    float loss = 0.0f;

    CHECK(nvp_rng_create(&rng, 42, NULL));
    CHECK(nvp_two_moons(rng, 2000, 0.05f, data, NULL));
    /* 4 coupling layers with alternating masks, 2 hidden layers of 64 */
    CHECK(nvp_chain_create_alternating(&flow, 2, 4, 2, hidden, 0, rng, NULL));
    CHECK(nvp_adam_create(&adam, nvp_chain_num_params(flow), NULL));
    CHECK(nvp_adam_set_lr(adam, 1e-3f));
    for (int step = 1; step <= 500; step++)
        CHECK(nvp_chain_train_step(flow, adam, rng, 2000, data, 100, &loss));
    printf("loss after 500 steps: %.3f\n", loss);

    CHECK(nvp_chain_sample(flow, rng, 5, samples, NULL));
    CHECK(nvp_chain_log_prob(flow, 5, samples, lp));
    for (int i = 0; i < 5; i++)
        printf("(%6.3f, %6.3f)  log p = %.3f\n", samples[2 * i],
               samples[2 * i + 1], lp[i]);

    nvp_adam_free(adam);
    nvp_chain_free(flow);
    nvp_rng_free(rng);
    return 0;
}
