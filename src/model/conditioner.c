/* SPDX-License-Identifier: MIT */
/* The conditioner MLP: plan, forward and backward (conditioner.h).  Bias
 * and ReLU are fused into the matrix multiply's epilogue, and so are the
 * ReLU mask of the backward and the bias gradient's column sums. */
#include "model/conditioner.h"

#include "core/alloc.h"
#include "kernels/vec.h"
#include "runtime/vec_parallel.h"

#include <math.h>
#include <string.h>

/* Hidden activations whose rows are a multiple of this many floats (1
 * KiB) apart are stored ACT_SKEW_FLOATS (a cache line) further apart.
 * The rule was 2 KiB (512 floats) until 0.7.6; skewing the rows of
 * 256-wide layers too made the D = 8 model's step (8 couplings of
 * 256-256, batch 256) 2.4% and 3.2% faster and its gradient 1.9% (Zen 5,
 * one process alternating both layouts; log_prob and 768-wide layers
 * even). */
#define ACT_CRITICAL_FLOATS 256
#define ACT_SKEW_FLOATS 16

int nvp__cond_plan(nvp_conditioner *c, const nvp_errbox *eb, const char *fn,
                   size_t n_in, size_t n_out, size_t n_hidden,
                   const size_t *hidden)
{
    c->n_in = n_in;
    c->n_out = n_out;
    c->n_dense = n_hidden + 1;
    size_t off = 0, in = n_in, max_width = n_in > n_out ? n_in : n_out;
    for (size_t l = 0; l < c->n_dense; l++) {
        const size_t out = l < n_hidden ? hidden[l] : n_out;
        /* Widths are bounded, so in * out + out cannot overflow; the sum
         * over layers is checked against NVP_MAX_PARAMS. */
        const size_t w = in * out + out;
        NVP_REQUIRE(w <= NVP_MAX_PARAMS && off <= NVP_MAX_PARAMS - w,
                    NVP_EOVERFLOW, "%s: more than %zu parameters", fn,
                    (size_t)NVP_MAX_PARAMS);
        c->dense[l].in = in;
        c->dense[l].out = out;
        c->dense[l].w_off = off;
        c->dense[l].b_off = off + in * out;
        off += w;
        if (out > max_width)
            max_width = out;
        in = out;
    }
    c->n_params = off;
    /* A single input makes the first hidden layer piecewise linear in it:
     * the sweep computes the first two layers exactly, and much faster. */
    c->first = n_in == 1 && c->n_dense >= 2 ? NVP_FIRST_SWEEP
                                            : NVP_FIRST_PRODUCTS;
    for (size_t l = 0; l < c->n_dense; l++) {
        nvp_dense *d = &c->dense[l];
        /* A hidden layer's rows 1 KiB or a multiple apart would put the
         * micro-kernel's ten rows of A in at most four L1 sets: a line
         * more apart spreads them (the output layer's rows are the
         * coupling's, and the sweep's layers are its own, so those stay
         * dense). */
        const int own = l + 1 < c->n_dense &&
                        !(c->first == NVP_FIRST_SWEEP && l <= 1);
        d->ld = own && d->out % ACT_CRITICAL_FLOATS == 0
                    ? d->out + ACT_SKEW_FLOATS
                    : d->out;
        if (d->ld > max_width)
            max_width = d->ld;
    }
    c->max_width = max_width;
    return NVP_OK;
}

size_t nvp__cond_cache_floats(const nvp_conditioner *c, size_t rows)
{
    size_t f = nvp__carved(rows * c->n_in);
    for (size_t l = 0; l < c->n_dense; l++)
        f += nvp__carved(rows * c->dense[l].ld);
    if (c->first == NVP_FIRST_SWEEP)
        f += nvp__sweep_floats(c->dense[0].out, c->dense[1].out, rows);
    return f;
}

void nvp__cond_cache_bind(const nvp_conditioner *c, size_t rows, float *base,
                          nvp_cond_cache *cache)
{
    float *cursor = base;
    cache->input = nvp__carve(&cursor, rows * c->n_in);
    for (size_t l = 0; l < c->n_dense; l++)
        cache->act[l] = nvp__carve(&cursor, rows * c->dense[l].ld);
    cache->sweep = c->first == NVP_FIRST_SWEEP ? cursor : NULL;
}

size_t nvp__cond_scratch_floats(const nvp_conditioner *c, size_t rows)
{
    /* two ping-pong buffers of the widest layer */
    return 2 * nvp__carved(rows * c->max_width);
}

/* The first two layers as a sweep's network. */
static nvp_sweep_net sweep_net(const nvp_conditioner *c, const float *params)
{
    const nvp_dense *d0 = &c->dense[0], *d1 = &c->dense[1];
    nvp_sweep_net net = {d0->out,           d1->out,
                         params + d0->w_off, params + d0->b_off,
                         params + d1->w_off, params + d1->b_off,
                         c->n_dense > 2};
    return net;
}

/* The largest |v| as bits over the entries of a vector laid out as the
 * parameters (the parameters, or their gradient) that no product reads or
 * stores as a whole matrix, so that no product measures them: the
 * biases, and under a sweep its two layers (on ex's threads: the sweep's
 * second layer is a square matrix). */
static uint32_t rest_bits(const nvp_conditioner *c, const nvp_exec *ex,
                          const float *v)
{
    uint32_t bits = 0;
    for (size_t l = 0; l < c->n_dense; l++) {
        const nvp_dense *d = &c->dense[l];
        const int swept = c->first == NVP_FIRST_SWEEP && l <= 1;
        const uint32_t b =
            swept ? nvp__par_max_abs_bits(ex->pool, ex->isa, v + d->w_off,
                                          d->in * d->out + d->out)
                  : nvp__max_abs_bits(ex->isa, v + d->b_off, d->out);
        bits = b > bits ? b : bits;
    }
    return bits;
}

const float *nvp__cond_forward(const nvp_conditioner *c, const nvp_exec *ex,
                               const float *params, size_t rows,
                               const nvp_cond_cache *cache)
{
    const float *x = cache->input;
    size_t ldx = c->n_in;
    float *y = NULL;
    size_t first = 0;
    /* A call that checks the parameters as it reads them: the weights as
     * the products read them, the rest here, before the sweep, which
     * orders rows by values its parameters make and is never given a
     * NaN (its rows get NaN instead, and the caller refuses the call). */
    int swept_finite = 1;
    if (ex->params_max) {
        const uint32_t bits = rest_bits(c, ex, params);
        nvp__absmax_merge(ex->params_max, bits);
        swept_finite = bits < NVP_INF_BITS;
    }
    if (c->first == NVP_FIRST_SWEEP) {
        const nvp_sweep_net net = sweep_net(c, params);
        y = cache->act[1];
        if (swept_finite)
            nvp__exec_sweep_forward(ex, &net, rows, x, y, cache->sweep);
        else
            for (size_t i = 0; i < rows * c->dense[1].ld; i++)
                y[i] = NAN;
        x = y;
        ldx = c->dense[1].ld;
        first = 2;
    }
    for (size_t l = first; l < c->n_dense; l++) {
        const nvp_dense *d = &c->dense[l];
        y = cache->act[l];
        nvp_epilogue ep = {params + d->b_off, l + 1 < c->n_dense, NULL, 0,
                           NULL, NULL, ex->params_max};
        nvp__exec_gemm(ex, 0, 0, rows, d->out, d->in, x, ldx,
                       params + d->w_off, d->out, 0, y, d->ld, &ep);
        x = y;
        ldx = d->ld;
    }
    return y;
}

int nvp__cond_owns_out_bias(const nvp_conditioner *c)
{
    return c->first == NVP_FIRST_SWEEP && c->n_dense == 2;
}

void nvp__cond_backward(const nvp_conditioner *c, const nvp_exec *ex,
                        const float *params, size_t rows,
                        const nvp_cond_cache *cache, const float *dout,
                        float *din, float *grad, int fresh, float *scratch)
{
    float *cursor = scratch;
    float *buf[2] = {nvp__carve(&cursor, rows * c->max_width),
                     nvp__carve(&cursor, rows * c->max_width)};
    const int sweep = c->first == NVP_FIRST_SWEEP;
    const float *dz = dout;
    size_t lddz = c->n_out; /* dz's row stride */
    /* Fresh: every product's weight gradient is written, not added (the
     * product sums from +0, which never gives -0, so this is 0 + dW
     * bit for bit), and what is still added into is cleared here: the
     * biases (but the output layer's, which the caller summed into after
     * clearing it) and, under a sweep, its first layer. */
    const int write_fresh = fresh && grad;
    /* On the last chunk of a checked pass, the weight gradients are
     * measured as their products store them, the rest below. */
    const int measure = grad && ex->grad_max;
    const nvp_epilogue measure_dw = {NULL, 0, NULL, 0,
                                     NULL, ex->grad_max, NULL};
    if (write_fresh)
        for (size_t l = 0; l < c->n_dense; l++) {
            const nvp_dense *d = &c->dense[l];
            if (sweep && l == 0)
                memset(grad + d->w_off, 0,
                       (d->in * d->out + d->out) * sizeof *grad);
            else if (!(sweep && l == 1) && l + 1 < c->n_dense)
                memset(grad + d->b_off, 0, d->out * sizeof *grad);
        }
    for (size_t l = c->n_dense; l-- > 0;) {
        if (l == 1 && sweep) {
            /* The first two layers ran as a sweep; so does their backward. */
            const nvp_sweep_net net = sweep_net(c, params);
            nvp_sweep_grad g = {NULL, NULL, NULL, NULL};
            if (grad) {
                g.w1 = grad + c->dense[0].w_off;
                g.b1 = grad + c->dense[0].b_off;
                g.w2 = grad + c->dense[1].w_off;
                g.b2 = grad + c->dense[1].b_off;
            }
            nvp__exec_sweep_backward(ex, &net, rows, cache->input, dz, &g,
                                     din, cache->sweep, fresh);
            break;
        }
        const nvp_dense *d = &c->dense[l];
        const float *x = l == 0 ? cache->input : cache->act[l - 1];
        const size_t ldx = l == 0 ? c->n_in : c->dense[l - 1].ld;
        /* dW += X^T dZ.  Layer l's bias gradient, the column sums of dz,
         * was added while dz was made: by the caller for the output layer,
         * by the epilogue of the product that stored dz below. */
        if (grad)
            nvp__exec_gemm(ex, 1, 0, d->in, d->out, rows, x, ldx, dz, lddz,
                           !write_fresh, grad + d->w_off, d->out,
                           measure ? &measure_dw : NULL);
        /* dX = dZ W^T, gated by the ReLU of the layer below; the input's
         * gradient only when the caller wants it. */
        if (l == 0 && !din)
            break;
        float *dx = l == 0 ? din : buf[l & 1];
        nvp_epilogue ep = {NULL, 0, l == 0 ? NULL : x, ldx, NULL, NULL, NULL};
        /* The layer below sums its bias gradient from dx as dx is stored
         * (the same adds in the same order as a loop over dx), except
         * under a sweep, which sums its own. */
        if (grad && l > 0 && !(l == 2 && sweep))
            ep.colsum = grad + c->dense[l - 1].b_off;
        nvp__exec_gemm(ex, 0, 1, rows, d->in, d->out, dz, lddz,
                       params + d->w_off, d->out, 0, dx, ldx, &ep);
        dz = dx;
        lddz = ldx;
    }
    /* what no product measured: final now, on the last chunk */
    if (measure)
        nvp__absmax_merge(ex->grad_max, rest_bits(c, ex, grad));
}

void nvp__cond_fresh_range(const nvp_conditioner *c, size_t *off,
                           size_t *len)
{
    *off = 0;
    *len = c->n_params;
}
