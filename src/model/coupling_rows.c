/* SPDX-License-Identifier: MIT */
/* The arithmetic of a coupling layer on a chunk of rows: the conditioner
 * MLP forward and backward through the blocked matrix multiply, and the
 * affine transform with its log-determinant in one pass. */
#include <math.h>
#include <string.h>

#include "model/coupling.h"
#include "kernels/sweep.h"

size_t nvp__coupling_cache_floats(const nvp_coupling *c, size_t rows)
{
    size_t f = nvp__carved(rows * c->na);
    for (size_t l = 0; l < c->n_dense; l++)
        f += nvp__carved(rows * c->dense[l].out);
    if (nvp__sweep_applies(c))
        f += nvp__sweep_floats(c, rows);
    return f;
}

size_t nvp__coupling_scratch_floats(const nvp_coupling *c, size_t rows)
{
    /* dL/d(output), two ping-pong buffers of the widest layer, and
     * dL/d(input). */
    return nvp__carved(rows * 2 * c->nb) + 2 * nvp__carved(rows * c->max_width) +
           nvp__carved(rows * c->na);
}

/* Output block of dense layer l inside a cache: after the input and the
 * outputs of layers 0..l-1. */
static float *act_ptr(const nvp_coupling *c, const float *cache, size_t rows,
                      size_t l)
{
    const float *p = cache + nvp__carved(rows * c->na);
    for (size_t i = 0; i < l; i++)
        p += nvp__carved(rows * c->dense[i].out);
    return (float *)p;
}

/* The sweep's scratch, after the last layer's output in the cache. */
static float *sweep_scratch(const nvp_coupling *c, const float *cache,
                            size_t rows)
{
    return act_ptr(c, cache, rows, c->n_dense);
}

/* Conditioner forward: gathers z_a into the cache and runs every dense
 * layer; bias and ReLU are fused into the multiply's epilogue.  With a
 * single input, the first two layers run as a sweep (sweep.h) and the
 * first one's slot in the cache stays unused.  Returns the output block
 * (rows x 2 nb: shift, then log_scale). */
static float *conditioner_forward(const nvp_coupling *c, const nvp_exec *ex,
                                  size_t rows, const float *z, float *cache)
{
    float *in = cache;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < c->na; j++)
            in[i * c->na + j] = z[i * c->dim + c->idx_a[j]];
    const float *x = in;
    float *y = NULL;
    size_t first = 0;
    if (nvp__sweep_applies(c)) {
        y = act_ptr(c, cache, rows, 1);
        nvp__sweep_forward(c, ex->pool, rows, in, y,
                           sweep_scratch(c, cache, rows));
        x = y;
        first = 2;
    }
    for (size_t l = first; l < c->n_dense; l++) {
        const nvp_dense *d = &c->dense[l];
        y = act_ptr(c, cache, rows, l);
        nvp_epilogue ep = {c->params + d->b_off, l + 1 < c->n_dense, NULL, 0,
                           NULL};
        nvp__exec_gemm(ex, 0, 0, rows, d->out, d->in, x, d->in,
                  c->params + d->w_off, d->out, 0, y, d->out, &ep);
        x = y;
    }
    return y;
}

/* The log-scale the layer applies: the conditioner's raw output, or with a
 * clamp bound c > 0 the soft clamp c * tanh(raw / c), which keeps every
 * scale inside [e^-c, e^c] while staying smooth. */
static inline float log_scale_of(float raw, float clamp)
{
    return clamp > 0.0f ? clamp * tanhf(raw / clamp) : raw;
}

void nvp__coupling_inverse_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, float *ildj,
                                float *cache)
{
    const float *out = conditioner_forward(c, ex, rows, z, cache);
    const size_t nb = c->nb, dim = c->dim;
    for (size_t i = 0; i < rows; i++) {
        const float *shift = out + i * 2 * nb;
        const float *log_scale = shift + nb;
        float *zi = z + i * dim;
        float sum = 0.0f;
        for (size_t j = 0; j < nb; j++) {
            const size_t b = c->idx_b[j];
            const float ls = log_scale_of(log_scale[j], c->clamp);
            zi[b] = (zi[b] - shift[j]) * expf(-ls);
            sum += ls;
        }
        if (ildj)
            ildj[i] -= sum;
    }
}

void nvp__coupling_forward_rows(const nvp_coupling *c, const nvp_exec *ex,
                                size_t rows, float *z, float *logdet,
                                float *cache)
{
    const float *out = conditioner_forward(c, ex, rows, z, cache);
    const size_t nb = c->nb, dim = c->dim;
    for (size_t i = 0; i < rows; i++) {
        const float *shift = out + i * 2 * nb;
        const float *log_scale = shift + nb;
        float *zi = z + i * dim;
        float sum = 0.0f;
        for (size_t j = 0; j < nb; j++) {
            const size_t b = c->idx_b[j];
            const float ls = log_scale_of(log_scale[j], c->clamp);
            zi[b] = zi[b] * expf(ls) + shift[j];
            sum += ls;
        }
        if (logdet)
            logdet[i] += sum;
    }
}

/* Conditioner backward.  dout (rows x 2 nb) is dL/d(output), whose column
 * sums the caller has already added into the output layer's bias
 * gradient; adds the rest of the parameter gradient into grad (may be
 * NULL) and writes dL/d(input) into din (rows x na; NULL: not needed).
 * buf0 and buf1 hold rows x max_width floats each. */
static void conditioner_backward(const nvp_coupling *c, const nvp_exec *ex,
                                 size_t rows, const float *cache,
                                 const float *dout, float *din, float *grad,
                                 int fresh, float *buf0, float *buf1)
{
    float *buf[2] = {buf0, buf1};
    const float *dz = dout;
    /* Whether layer l's bias gradient, the column sums of dz, was already
     * added while dz was made: by the caller for the output layer, by the
     * epilogue of the product that stored dz below it. */
    int dz_summed = 1;
    for (size_t l = c->n_dense; l-- > 0;) {
        if (l == 1 && nvp__sweep_applies(c)) {
            /* The first two layers ran as a sweep; so does their backward. */
            nvp__sweep_backward(c, ex->pool, rows, cache, dz, grad, din,
                                sweep_scratch(c, cache, rows), fresh);
            break;
        }
        const nvp_dense *d = &c->dense[l];
        const float *x = l == 0 ? cache : act_ptr(c, cache, rows, l - 1);
        if (grad) {
            float *gb = grad + d->b_off;
            if (!dz_summed)
                for (size_t i = 0; i < rows; i++)
                    for (size_t j = 0; j < d->out; j++)
                        gb[j] += dz[i * d->out + j];
            /* dW += X^T dZ */
            nvp__exec_gemm(ex, 1, 0, d->in, d->out, rows, x,
                      d->in, dz, d->out, 1, grad + d->w_off, d->out, NULL);
        }
        /* dX = dZ W^T, gated by the ReLU of the layer below; the input's
         * gradient only when the caller wants it. */
        if (l == 0 && !din)
            break;
        float *dx = l == 0 ? din : buf[l & 1];
        nvp_epilogue ep = {NULL, 0, l == 0 ? NULL : x, d->in, NULL};
        /* The layer below sums its bias gradient from dx as dx is stored
         * (the same adds in the same order as a loop over dx), except
         * under a sweep, which sums its own. */
        dz_summed = grad && l > 0 && !(l == 2 && nvp__sweep_applies(c));
        if (dz_summed)
            ep.colsum = grad + c->dense[l - 1].b_off;
        nvp__exec_gemm(ex, 0, 1, rows, d->in, d->out, dz,
                  d->out, c->params + d->w_off, d->out, 0, dx, d->in, &ep);
        dz = dx;
    }
}

void nvp__coupling_inverse_backward_rows(const nvp_coupling *c,
                                         const nvp_exec *ex, size_t rows,
                                         const float *cache, const float *x,
                                         const float *dx, const float *dildj,
                                         float *dy, float *grad,
                                         int fresh, float *scratch)
{
    const size_t nb = c->nb, na = c->na, dim = c->dim;
    const float *out = act_ptr(c, cache, rows, c->n_dense - 1);
    float *cursor = scratch;
    float *dout = nvp__carve(&cursor, rows * 2 * nb);
    float *buf0 = nvp__carve(&cursor, rows * c->max_width);
    float *buf1 = nvp__carve(&cursor, rows * c->max_width);
    float *din = nvp__carve(&cursor, rows * na);
    /* The output layer's bias gradient is the column sums of dout: summed
     * here, row by row as dout is made (the order a loop over it would
     * add them in), unless the output layer is a sweep's second layer
     * (one hidden layer), whose bias the sweep sums. */
    const int sweep_owns_output = nvp__sweep_applies(c) && c->n_dense == 2;
    float *gb_out = grad && !sweep_owns_output
                        ? grad + c->dense[c->n_dense - 1].b_off
                        : NULL;
    for (size_t i = 0; i < rows; i++) {
        const float *log_scale = out + i * 2 * nb + nb;
        const float *xi = x + i * dim;
        const float *dxi = dx + i * dim;
        const float di = dildj ? dildj[i] : 0.0f;
        float *dsh = dout + i * 2 * nb;
        float *dls = dsh + nb;
        for (size_t j = 0; j < nb; j++) {
            const size_t b = c->idx_b[j];
            const float ls = log_scale_of(log_scale[j], c->clamp);
            const float e = expf(-ls);
            /* x_b = (y_b - shift) e^{-ls}:
             *   dx_b/dy_b = e^{-ls}, dx_b/dshift = -e^{-ls}, dx_b/dls = -x_b;
             *   ildj = -sum ls, so dildj/dls = -1. */
            if (dy)
                dy[i * dim + b] = dxi[b] * e;
            dsh[j] = -dxi[b] * e;
            float g = -dxi[b] * xi[b] - di;
            if (c->clamp > 0.0f) {
                /* d(c tanh(r / c))/dr = 1 - tanh^2(r / c) */
                const float t = ls / c->clamp;
                g *= 1.0f - t * t;
            }
            dls[j] = g;
        }
        if (gb_out)
            for (size_t j = 0; j < 2 * nb; j++)
                gb_out[j] += dsh[j];
    }
    conditioner_backward(c, ex, rows, cache, dout, dy ? din : NULL, grad,
                         fresh, buf0, buf1);
    if (dy) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < na; j++) {
                const size_t a = c->idx_a[j];
                dy[i * dim + a] = dx[i * dim + a] + din[i * na + j];
            }
    }
}
