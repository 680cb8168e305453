/* SPDX-License-Identifier: MIT */
/* Naive double-precision reference (see reference.h).  Deliberately shares
 * nothing with src/: plain loops straight from the formulas. */
#include "reference.h"

#include <math.h>
#include <string.h>

#define LOG_2PI 1.837877066409345483560659472811

int ref_coupling_init(ref_coupling *r, size_t dim, const unsigned char *mask,
                      size_t n_hidden, const size_t *hidden)
{
    if (dim > REF_MAX_DIM || n_hidden + 1 > REF_MAX_DENSE)
        return -1;
    memset(r, 0, sizeof *r);
    r->dim = dim;
    for (size_t i = 0; i < dim; i++) {
        r->mask[i] = mask[i];
        if (mask[i])
            r->idx_a[r->na++] = i;
        else
            r->idx_b[r->nb++] = i;
    }
    /* Dense layers na -> h_1 -> ... -> h_L -> 2 nb; each holds W
     * (fan_in x fan_out, row-major) then b (fan_out). */
    r->n_dense = n_hidden + 1;
    size_t in = r->na, total = 0;
    for (size_t l = 0; l < r->n_dense; l++) {
        const size_t out = l < n_hidden ? hidden[l] : 2 * r->nb;
        if (out > REF_MAX_WIDTH)
            return -1;
        r->fan_in[l] = in;
        r->fan_out[l] = out;
        total += in * out + out;
        in = out;
    }
    r->n_params = total;
    return 0;
}

void ref_half_mask(size_t dim, int flip, unsigned char *mask)
{
    for (size_t i = 0; i < dim; i++) {
        const int first_half = i < dim / 2;
        mask[i] = (unsigned char)(flip ? !first_half : first_half);
    }
}

void ref_conditioner(const ref_coupling *r, const double *params,
                     const double *xa, double *shift, double *log_scale)
{
    double buf[2][REF_MAX_WIDTH > 2 * REF_MAX_DIM ? REF_MAX_WIDTH
                                                  : 2 * REF_MAX_DIM];
    const double *in = xa;
    const double *p = params;
    for (size_t l = 0; l < r->n_dense; l++) {
        const size_t fi = r->fan_in[l], fo = r->fan_out[l];
        const double *w = p, *b = p + fi * fo;
        double *out = buf[l & 1];
        for (size_t j = 0; j < fo; j++) {
            double s = b[j];
            for (size_t i = 0; i < fi; i++)
                s += in[i] * w[i * fo + j];
            /* ReLU after every hidden layer, nothing on the output. */
            out[j] = (l + 1 < r->n_dense && s < 0.0) ? 0.0 : s;
        }
        p += fi * fo + fo;
        in = out;
    }
    for (size_t j = 0; j < r->nb; j++) {
        const double raw = in[r->nb + j];
        shift[j] = in[j];
        log_scale[j] = r->clamp > 0.0 ? r->clamp * tanh(raw / r->clamp) : raw;
    }
}

static void gather_a(const ref_coupling *r, const double *v, double *xa)
{
    for (size_t j = 0; j < r->na; j++)
        xa[j] = v[r->idx_a[j]];
}

void ref_coupling_forward(const ref_coupling *r, const double *params,
                          const double *x, double *y, double *logdet)
{
    double xa[REF_MAX_DIM], sh[REF_MAX_DIM], ls[REF_MAX_DIM];
    gather_a(r, x, xa);
    ref_conditioner(r, params, xa, sh, ls);
    double ld = 0.0;
    double out[REF_MAX_DIM];
    memcpy(out, x, r->dim * sizeof *out);
    for (size_t j = 0; j < r->nb; j++) {
        const size_t b = r->idx_b[j];
        out[b] = x[b] * exp(ls[j]) + sh[j];
        ld += ls[j];
    }
    memcpy(y, out, r->dim * sizeof *y);
    if (logdet)
        *logdet = ld;
}

void ref_coupling_inverse(const ref_coupling *r, const double *params,
                          const double *y, double *x, double *ildj)
{
    double ya[REF_MAX_DIM], sh[REF_MAX_DIM], ls[REF_MAX_DIM];
    gather_a(r, y, ya);
    ref_conditioner(r, params, ya, sh, ls);
    double ld = 0.0;
    double out[REF_MAX_DIM];
    memcpy(out, y, r->dim * sizeof *out);
    for (size_t j = 0; j < r->nb; j++) {
        const size_t b = r->idx_b[j];
        out[b] = (y[b] - sh[j]) * exp(-ls[j]);
        ld -= ls[j];
    }
    memcpy(x, out, r->dim * sizeof *x);
    if (ildj)
        *ildj = ld;
}

void ref_chain_init_layers(ref_chain *c, const ref_coupling *layers,
                           size_t n_layers)
{
    memset(c, 0, sizeof *c);
    c->dim = layers[0].dim;
    c->n_layers = n_layers;
    size_t off = 0;
    for (size_t k = 0; k < n_layers; k++) {
        c->layer[k] = layers[k];
        c->offset[k] = off;
        off += layers[k].n_params;
    }
    c->n_params = off;
}

int ref_chain_init_alternating(ref_chain *c, size_t dim, size_t n_layers,
                               size_t n_hidden, const size_t *hidden)
{
    ref_coupling layers[REF_MAX_LAYERS];
    if (n_layers > REF_MAX_LAYERS || dim > REF_MAX_DIM)
        return -1;
    for (size_t k = 0; k < n_layers; k++) {
        unsigned char mask[REF_MAX_DIM];
        ref_half_mask(dim, (int)(k % 2), mask);
        if (ref_coupling_init(&layers[k], dim, mask, n_hidden, hidden))
            return -1;
    }
    ref_chain_init_layers(c, layers, n_layers);
    return 0;
}

void ref_chain_forward(const ref_chain *c, const double *params,
                       const double *x, double *y, double *logdet)
{
    double z[REF_MAX_DIM], ld = 0.0;
    memcpy(z, x, c->dim * sizeof *z);
    for (size_t k = 0; k < c->n_layers; k++) {
        double l;
        ref_coupling_forward(&c->layer[k], params + c->offset[k], z, z, &l);
        ld += l;
    }
    memcpy(y, z, c->dim * sizeof *y);
    if (logdet)
        *logdet = ld;
}

void ref_chain_inverse(const ref_chain *c, const double *params,
                       const double *y, double *x, double *ildj)
{
    double z[REF_MAX_DIM], ld = 0.0;
    memcpy(z, y, c->dim * sizeof *z);
    /* The last layer is inverted first. */
    for (size_t k = c->n_layers; k-- > 0;) {
        double l;
        ref_coupling_inverse(&c->layer[k], params + c->offset[k], z, z, &l);
        ld += l;
    }
    memcpy(x, z, c->dim * sizeof *x);
    if (ildj)
        *ildj = ld;
}

double ref_base_log_prob(size_t dim, const double *x)
{
    double s = 0.0;
    for (size_t i = 0; i < dim; i++)
        s += -0.5 * x[i] * x[i] - 0.5 * LOG_2PI;
    return s;
}

double ref_chain_log_prob(const ref_chain *c, const double *params,
                          const double *y)
{
    double x[REF_MAX_DIM], ildj;
    ref_chain_inverse(c, params, y, x, &ildj);
    return ref_base_log_prob(c->dim, x) + ildj;
}

double ref_chain_log_prob_f(const ref_chain *c, const double *params,
                            const float *y)
{
    /* zeroed only because gcc cannot see that dim <= REF_MAX_DIM */
    double yd[REF_MAX_DIM] = {0};
    for (size_t j = 0; j < c->dim; j++)
        yd[j] = y[j];
    return ref_chain_log_prob(c, params, yd);
}

double ref_chain_nll(const ref_chain *c, const double *params, size_t n,
                     const float *y)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += ref_chain_log_prob_f(c, params, y + i * c->dim);
    return -sum / (double)n;
}

double ref_solve_logdet(size_t n, double *a, double *b)
{
    double logdet = 0.0;
    for (size_t col = 0; col < n; col++) {
        size_t piv = col;
        for (size_t r = col + 1; r < n; r++)
            if (fabs(a[r * n + col]) > fabs(a[piv * n + col]))
                piv = r;
        if (a[piv * n + col] == 0.0)
            return -INFINITY;
        if (piv != col) {
            for (size_t j = 0; j < n; j++) {
                const double t = a[col * n + j];
                a[col * n + j] = a[piv * n + j];
                a[piv * n + j] = t;
            }
            if (b) {
                const double t = b[col];
                b[col] = b[piv];
                b[piv] = t;
            }
        }
        const double d = a[col * n + col];
        logdet += log(fabs(d));
        for (size_t r = col + 1; r < n; r++) {
            const double f = a[r * n + col] / d;
            for (size_t j = col; j < n; j++)
                a[r * n + j] -= f * a[col * n + j];
            if (b)
                b[r] -= f * b[col];
        }
    }
    /* back substitution through the upper triangle left in a */
    for (size_t i = n; b && i-- > 0;) {
        double t = b[i];
        for (size_t j = i + 1; j < n; j++)
            t -= a[i * n + j] * b[j];
        b[i] = t / a[i * n + i];
    }
    return logdet;
}

double ref_log_abs_det(size_t n, double *a)
{
    return ref_solve_logdet(n, a, NULL);
}

void ref_params_from_float(size_t n, const float *src, double *dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}
