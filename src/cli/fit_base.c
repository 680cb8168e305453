/* SPDX-License-Identifier: MIT */
/* fit_base.c - nvpflow fit --base mixture: the flow's base becomes a
 * Gaussian mixture fitted to the training rows as the untrained model
 * maps them (through the whitening layer; the couplings start as the
 * identity), so that before training the model is that mixture fitted to
 * the data: the classical estimator, which training then improves on the
 * validation rows.  Without a given k, k = 1 to FIT_MIXTURE_MAX_K is
 * chosen once per run (the --budget trials and the --refit reuse it): on
 * the validation rows, or, with none (--val-frac 0), by the Bayesian
 * information criterion on the training rows, whose likelihood alone
 * would always pick the largest k. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "fit.h"
#include "progress.h"

static const char CMD[] = "fit";

/* The generator of the mixture's k-means++ seeds: from --init-seed, apart
 * from the weights' draws. */
#define MIXTURE_SEED_MIX 0x6d69787475726521ull

/* rows x of s mapped to the base by the untrained chain, into z */
static int to_base(fit_state *s, size_t n, const float *x, const float *c,
                   float *z)
{
    return c ? nvp_chain_inverse_given(s->chain, n, x, c, z, NULL)
             : nvp_chain_inverse(s->chain, n, x, z, NULL);
}

/* The mixture of k components fitted to the n rows z. */
static int fit_k(const fit_state *s, size_t n, const float *z, size_t k,
                 nvp_base **out)
{
    nvp_rng *rng = NULL;
    int rc = nvp_rng_create(&rng, s->cfg.init_seed ^ MIXTURE_SEED_MIX, NULL);
    if (rc == NVP_OK)
        rc = nvp_base_fit_mixture(out, n, s->data.cols, z, k, rng, NULL);
    nvp_rng_free(rng);
    return rc;
}

int fit_set_mixture_base(fit_state *s)
{
    const size_t dim = s->data.cols;
    const float *train = s->train_clean ? s->train_clean : s->train_x;
    const size_t n = s->n_train;
    if (dim > FIT_MIXTURE_MAX_DIM)
        return cli_error(CMD, "--base mixture: at most %d columns, not %zu",
                         FIT_MIXTURE_MAX_DIM, dim);
    /* the validation rows, or the training rows without them */
    const size_t n_ev = s->n_val ? s->n_val : n;
    float *z = malloc(n * dim * sizeof *z);
    float *zv = malloc(n_ev * dim * sizeof *zv);
    float *lp = malloc(n_ev * sizeof *lp);
    nvp_base *best = NULL;
    int status = CLI_OK, rc = NVP_OK;
    if (!z || !zv || !lp) {
        status = cli_error(CMD, "out of memory for the mixture base");
        goto done;
    }
    if ((rc = to_base(s, n, train, s->train_c, z)) != NVP_OK ||
        (rc = to_base(s, n_ev, s->n_val ? s->val_x : train,
                      s->n_val ? s->val_c : s->train_c, zv)) != NVP_OK) {
        status = cli_lib_error(CMD, "mapping the rows to the base", rc,
                               nvp_chain_errmsg(s->chain));
        goto done;
    }
    size_t k = s->cfg.mix_k ? s->cfg.mix_k : s->mix_k_chosen;
    if (k == 0) {
        /* k on the evaluation rows: the untrained chain's log-determinant
         * is the same for every k, so the base's log density decides */
        double best_ll = -INFINITY;
        for (size_t j = 1; j <= FIT_MIXTURE_MAX_K && j <= n; j++) {
            /* --budget: the scan ends with the search (k = 1 is always
             * fitted) */
            if (j > 1 && s->deadline > 0 && progress_now() >= s->deadline)
                break;
            nvp_base *b = NULL;
            if ((rc = fit_k(s, n, z, j, &b)) != NVP_OK) {
                /* a k the rows cannot support ends the scan */
                if (j == 1) {
                    status = cli_lib_error(CMD, "fitting the mixture base",
                                           rc, nvp_errmsg());
                    goto done;
                }
                break;
            }
            double ll = 0;
            if (nvp_base_log_prob(b, n_ev, zv, lp) == NVP_OK)
                for (size_t i = 0; i < n_ev; i++)
                    ll += lp[i];
            else
                ll = NAN;
            ll /= (double)n_ev;
            if (!s->n_val) {
                /* BIC / (-2 n): the mean log-likelihood less half the
                 * free parameters' log n / n */
                const double p = (double)j * ((double)dim +
                                              (double)dim * (dim + 1) / 2) +
                                 (double)(j - 1);
                ll -= 0.5 * p * log((double)n) / (double)n;
            }
            if (isfinite(ll) && ll > best_ll) {
                best_ll = ll;
                k = j;
                nvp_base_free(best);
                best = b;
            } else {
                nvp_base_free(b);
            }
        }
        if (!best) {
            status = cli_error(CMD, "--base mixture: no mixture fits the "
                               "rows");
            goto done;
        }
        s->mix_k_chosen = k;
        if (!s->cfg.quiet && !s->no_progress)
            fprintf(stderr, "nvpflow fit: mixture base of %zu component%s, "
                    "chosen %s\n", k, k == 1 ? "" : "s",
                    s->n_val ? "on the validation rows"
                             : "by BIC on the training rows");
    } else if ((rc = fit_k(s, n, z, k, &best)) != NVP_OK) {
        status = cli_lib_error(CMD, "fitting the mixture base", rc,
                               nvp_errmsg());
        goto done;
    }
    if ((rc = nvp_chain_set_base(s->chain, best)) != NVP_OK) {
        status = cli_lib_error(CMD, "setting the mixture base", rc,
                               nvp_chain_errmsg(s->chain));
        goto done;
    }
    best = NULL; /* the chain's now */
done:
    nvp_base_free(best);
    free(z);
    free(zv);
    free(lp);
    return status;
}
