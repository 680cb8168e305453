/* SPDX-License-Identifier: MIT */
/* lockstep: the main job's training run (examples/two_moons.c, reference
 * configuration) written out so that PyTorch can replay it step for step
 * from the same start (tests/bench/torch_lockstep.py).
 *
 *   lockstep SEED STEPS DIR [KERNEL [CLIP]]
 *
 * Draws exactly what the main job draws from the seed (data, initial
 * parameters, minibatch rows; the held-out set from its own seed), trains
 * the same way (nvp_chain_train_step's rows are the nvp_rng_index draws
 * used here, and its gradient and update are nvp_chain_nll_grad's and
 * nvp_adam_step's), and writes, little-endian, into DIR:
 *   data.f32     2000 x 2 standardised training points
 *   heldout.f32  2000 x 2 held-out points, standardised the same way
 *   params0.f32  the initial flat parameter vector
 *   rows.i32     STEPS x 100 minibatch row indices
 *   loss.f32     STEPS minibatch losses before each update
 *   result.txt   the held-out NLL of the last iterate and of the
 *                parameter average (decay 0.999), refused steps, and the
 *                gradient-norm clipping limit (0: none)
 * KERNEL (portable, avx2 or avx512) replaces the matrix-product kernel the
 * CPU would get, through the library's internals, to show what another
 * instruction set's rounding does to the same run; "native" keeps it.
 * CLIP replaces the main job's gradient-norm clipping limit (0: none, as
 * in version 0.2.0's main job).  Everything else uses the public API.
 * Unlike the main job, it does not stop after 100 refused steps in a row:
 * such a run (seed 45) goes on refusing, and its parameters and average
 * stay those the main job reports. */
#include <nvpflow.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { N_DATA = 2000, BATCH = 100 };
#define NOISE 0.05f
#define LR 1e-4f
#define DECAY 0.999f
/* As in examples/two_moons.c (CLIP is its DEFAULT_CLIP). */
#define EVAL_SEED_OFFSET 1000003u
#define CLIP 300.0f

static void die(const char *what, int rc)
{
    fprintf(stderr, "lockstep: %s failed: %s: %s\n", what, nvp_strerror(rc),
            nvp_errmsg());
    exit(1);
}

static void write_all(const char *dir, const char *name, const void *p,
                      size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "lockstep: cannot write %s\n", path);
        exit(1);
    }
}

static double mean_nll(const nvp_chain *c, const float *x, float *lp)
{
    int rc = nvp_chain_log_prob(c, N_DATA, x, lp);
    if (rc)
        die("nvp_chain_log_prob", rc);
    double s = 0.0;
    for (size_t i = 0; i < N_DATA; i++)
        s -= lp[i];
    return s / N_DATA;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: lockstep SEED STEPS DIR [KERNEL [CLIP]]\n");
        return 2;
    }
    float clip = CLIP;
    if (argc == 6) {
        char *end;
        const double v = strtod(argv[5], &end);
        if (!*argv[5] || *end || !(v == 0.0 || ((float)v > 0.0f &&
                                                (float)v < 1e30f))) {
            fprintf(stderr, "lockstep: CLIP must be 0 or a positive "
                            "number\n");
            return 2;
        }
        clip = (float)v;
    }
    char *end1, *end2;
    const uint64_t seed = strtoull(argv[1], &end1, 10);
    const unsigned long long steps_arg = strtoull(argv[2], &end2, 10);
    if (!*argv[1] || *end1 || !*argv[2] || *end2 || steps_arg == 0 ||
        steps_arg > 1000000) {
        fprintf(stderr, "lockstep: SEED must be a whole number and STEPS "
                        "one from 1 to 1000000\n");
        return 2;
    }
    const size_t steps = (size_t)steps_arg;
    const char *dir = argv[3];
    int rc;
    nvp_rng *rng, *eval_rng;
    nvp_scaler *sc;
    nvp_chain *c;
    nvp_adam *opt;
    float *data = malloc(N_DATA * 2 * sizeof *data);
    float *test = malloc(N_DATA * 2 * sizeof *test);
    float *lp = malloc(N_DATA * sizeof *lp);
    float *batch = malloc(BATCH * 2 * sizeof *batch);
    int32_t *rows = malloc(steps * BATCH * sizeof *rows);
    float *losses = malloc(steps * sizeof *losses);
    if (!data || !test || !lp || !batch || !rows || !losses) {
        fprintf(stderr, "lockstep: out of memory\n");
        return 1;
    }
    if ((rc = nvp_rng_create(&rng, seed, NULL)) ||
        (rc = nvp_two_moons(rng, N_DATA, NOISE, data, NULL)) ||
        (rc = nvp_scaler_create(&sc, 2, NULL)) ||
        (rc = nvp_scaler_fit(sc, N_DATA, data)) ||
        (rc = nvp_scaler_transform(sc, N_DATA, data, data)))
        die("making the data", rc);
    if ((rc = nvp_chain_create_alternating(&c, 2, 4, 0, NULL, 0, rng, NULL)))
        die("nvp_chain_create_alternating", rc);
    /* KERNEL picks the chain's and the optimizer's kernels through the
     * public setting, as a user would. */
    int kernels = NVP_KERNELS_AUTO;
    if (argc >= 5 && strcmp(argv[4], "native") != 0) {
        kernels = !strcmp(argv[4], "portable") ? NVP_KERNELS_PORTABLE
                  : !strcmp(argv[4], "avx2")   ? NVP_KERNELS_AVX2
                  : !strcmp(argv[4], "avx512") ? NVP_KERNELS_AVX512
                                               : -1;
        if ((rc = nvp_chain_set_kernels(c, kernels))) {
            fprintf(stderr, "lockstep: kernel '%s': %s\n", argv[4],
                    nvp_chain_errmsg(c));
            return 2;
        }
    }
    const size_t np = nvp_chain_num_params(c);
    float *params = malloc(np * sizeof *params), *grad = malloc(np * sizeof *grad);
    if (!params || !grad) {
        fprintf(stderr, "lockstep: out of memory\n");
        return 1;
    }
    if ((rc = nvp_chain_get_params(c, np, params)))
        die("nvp_chain_get_params", rc);
    write_all(dir, "params0.f32", params, np * sizeof *params);
    if ((rc = nvp_adam_create(&opt, np, NULL)) ||
        (rc = nvp_adam_set_lr(opt, LR)) ||
        (rc = nvp_adam_set_kernels(opt, kernels)) ||
        (rc = nvp_adam_set_clip_norm(opt, clip)) ||
        (rc = nvp_adam_set_average(opt, DECAY, np, params)))
        die("setting up Adam", rc);

    size_t refused = 0;
    for (size_t s = 0; s < steps; s++) {
        uint64_t idx[BATCH];
        if ((rc = nvp_rng_index(rng, BATCH, N_DATA, idx)))
            die("nvp_rng_index", rc);
        for (size_t i = 0; i < BATCH; i++) {
            rows[s * BATCH + i] = (int32_t)idx[i];
            memcpy(batch + 2 * i, data + 2 * idx[i], 2 * sizeof *batch);
        }
        rc = nvp_chain_nll_grad(c, BATCH, batch, grad, &losses[s]);
        if (rc == NVP_OK)
            rc = nvp_adam_step(opt, np, params, grad);
        if (rc == NVP_ENONFINITE) {
            refused++;
            continue;
        }
        if (rc)
            die("a training step", rc);
        if ((rc = nvp_chain_set_params(c, np, params)))
            die("nvp_chain_set_params", rc);
    }
    write_all(dir, "data.f32", data, N_DATA * 2 * sizeof *data);
    write_all(dir, "rows.i32", rows, steps * BATCH * sizeof *rows);
    write_all(dir, "loss.f32", losses, steps * sizeof *losses);

    if ((rc = nvp_rng_create(&eval_rng, seed + EVAL_SEED_OFFSET, NULL)) ||
        (rc = nvp_two_moons(eval_rng, N_DATA, NOISE, test, NULL)) ||
        (rc = nvp_scaler_transform(sc, N_DATA, test, test)))
        die("making the held-out set", rc);
    write_all(dir, "heldout.f32", test, N_DATA * 2 * sizeof *test);
    const double last = mean_nll(c, test, lp);
    if ((rc = nvp_adam_get_average(opt, np, params)) ||
        (rc = nvp_chain_set_params(c, np, params)))
        die("evaluating the average", rc);
    const double avg = mean_nll(c, test, lp);
    char text[256];
    const int len = snprintf(text, sizeof text,
                             "seed %llu steps %zu refused %zu clip %g "
                             "heldout_last %.4f heldout_ema %.4f\n",
                             (unsigned long long)seed, steps, refused,
                             (double)clip, last, avg);
    write_all(dir, "result.txt", text, (size_t)len);
    fputs(text, stdout);

    nvp_adam_free(opt);
    nvp_chain_free(c);
    nvp_scaler_free(sc);
    nvp_rng_free(rng);
    nvp_rng_free(eval_rng);
    free(data);
    free(test);
    free(lp);
    free(batch);
    free(rows);
    free(losses);
    free(params);
    free(grad);
    return 0;
}
