/* SPDX-License-Identifier: MIT */
/*
 * nvpflow.h - Real-NVP normalizing flows in C.
 *
 * One self-contained public header.  Everything the library exports is
 * declared here with the prefix nvp_ (functions, types) or NVP_ (macros).
 *
 * ---------------------------------------------------------------------------
 * Conventions (apply to every function unless its comment says otherwise)
 * ---------------------------------------------------------------------------
 * Status codes
 *   Fallible functions return int: NVP_OK (0) on success, a negative NVP_E*
 *   code otherwise.  The numeric values are pinned and never change.
 *   nvp_strerror() turns a code into a static string; nvp_errmsg() gives the
 *   detailed message of the calling thread's most recent failure, and each
 *   handle type has nvp_<type>_errmsg() for the last failure on that handle.
 *   On failure, outputs may have been partly written, but no model,
 *   optimizer or scaler is left in a changed state.  The one exception is
 *   an nvp_rng: the draws a failed call had already made are not given
 *   back (a refused training step has still drawn its minibatch).
 *   The library never prints, never exits, never aborts on bad input.
 *
 * Arrays
 *   Batched calls take caller-owned, flat, row-major float arrays: n rows of
 *   dim floats each, with explicit counts.  Outputs go to caller buffers.
 *   Unless a comment says an input may alias an output, arrays must not
 *   overlap.  n == 0, a NULL required pointer, or n * dim overflowing size_t
 *   is an error (NVP_EINVAL, NVP_EINVAL, NVP_EOVERFLOW).
 *
 * Ownership
 *   nvp_<type>_create*() hands the caller a new handle, released with
 *   nvp_<type>_free(), which accepts NULL.  Pointers passed into a call stay
 *   owned by the caller unless the comment says the callee takes them.
 *   Strings returned by the library are owned by the library.
 *
 * Thread-safety
 *   The library has no mutable global state (each handle chooses its own
 *   kernels, see nvp_chain_set_kernels).  Functions that take a const
 *   handle (log_prob, sample with a caller-owned nvp_rng, forward, inverse,
 *   the gradient queries) may run concurrently on one shared handle from
 *   many threads.  Functions that take a non-const handle (training steps,
 *   setters, free) need exclusive use of that handle.  An nvp_rng is mutated
 *   by every draw: give each thread its own.
 *
 * Memory
 *   Every constructor takes an optional const nvp_allocator *; NULL means
 *   the C library's malloc/realloc/free.  The handle keeps a copy and uses
 *   it for all of its memory, including its own release.
 *   Batched calls process rows in chunks: gradients and training steps
 *   of up to 256 rows, evaluations (log_prob, sample, forward, inverse,
 *   trace) of up to 1024 (512 where such a chunk's work space would pass
 *   32 MiB).  Each takes a work space sized for its chunk, m <= min(n,
 *   chunk) rows, kept by the handle for the next call (so calls in steady
 *   state allocate nothing; a larger n later replaces it by a larger
 *   one).  It holds about: evaluation, a copy of the rows and the
 *   activations of the largest layer's conditioner (m x the sum of its
 *   widths); a gradient or training step, the activations of every layer
 *   and K + 3 copies of the rows; each pool thread that takes part gets
 *   its own evaluation work space.  The floats are 4 bytes each.
 */
#ifndef NVPFLOW_H
#define NVPFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===========================================================================
 * Export macro and version
 * ========================================================================= */
#if defined(_WIN32) && defined(NVP_BUILD_SHARED)
#define NVP_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define NVP_API __attribute__((visibility("default")))
#else
#define NVP_API
#endif

/* The release version.  The Makefile reads these three lines. */
#define NVP_VERSION_MAJOR 0
#define NVP_VERSION_MINOR 7
#define NVP_VERSION_PATCH 9
#define NVP_VERSION_NUMBER \
    (NVP_VERSION_MAJOR * 10000 + NVP_VERSION_MINOR * 100 + NVP_VERSION_PATCH)
#define NVP_STRINGIFY_(x) #x
#define NVP_STRINGIFY(x) NVP_STRINGIFY_(x)
#define NVP_VERSION_STRING                                             \
    NVP_STRINGIFY(NVP_VERSION_MAJOR) "." NVP_STRINGIFY(NVP_VERSION_MINOR) \
    "." NVP_STRINGIFY(NVP_VERSION_PATCH)

/* Version of the library actually loaded at run time (NVP_VERSION_NUMBER of
 * the build).  Compare with the macro to detect a header/library mismatch. */
NVP_API unsigned nvp_version_number(void);
/* Same, as a static string such as "0.4.0". */
NVP_API const char *nvp_version_string(void);

/* ===========================================================================
 * Status codes (values pinned forever)
 * ========================================================================= */
#define NVP_OK 0
#define NVP_EINVAL (-1)     /* invalid argument: NULL, out of range, bad flag */
#define NVP_EDIM (-2)       /* dimension or length mismatch */
#define NVP_ENOMEM (-3)     /* an allocation failed */
#define NVP_EOVERFLOW (-4)  /* a size computation would overflow, or too big */
#define NVP_ENONFINITE (-5) /* a loss, gradient or value is NaN or infinite */
#define NVP_EIO (-6)        /* a file could not be read or written */
#define NVP_EFORMAT (-7)    /* data is truncated, corrupt or malformed */
#define NVP_EVERSION (-8)   /* data uses an unsupported format version */
#define NVP_ETHREAD (-9)    /* a thread could not be started */
#define NVP_EBUFSIZE (-10)  /* a caller-provided buffer is too small */
#define NVP_EUNSUPPORTED (-11) /* the CPU lacks the requested kernels */
#define NVP_EBUSY (-12)     /* another thread is using the handle */

/* Opaque handles (each described in its section below). */
typedef struct nvp_rng nvp_rng;           /* seeded random generator */
typedef struct nvp_base nvp_base;         /* base distribution */
typedef struct nvp_coupling nvp_coupling; /* affine coupling layer */
typedef struct nvp_layer nvp_layer;       /* a layer of any kind */
typedef struct nvp_chain nvp_chain;       /* base + layers */
typedef struct nvp_adam nvp_adam;         /* Adam optimizer state */
typedef struct nvp_scaler nvp_scaler;     /* per-axis standardiser */

/* A static, never-NULL description of a status code ("unknown error" for a
 * value that is not an NVP_E* code).  Thread-safe. */
NVP_API const char *nvp_strerror(int code);

/* The detailed message of the most recent failing nvp_ call made by the
 * calling thread ("" if none).  The string is thread-local and owned by the
 * library; it stays valid until the calling thread's next nvp_ call. */
NVP_API const char *nvp_errmsg(void);

/* ===========================================================================
 * Custom allocator
 * ========================================================================= */
#define NVP_ALLOCATOR_VERSION 1

/* A caller-supplied allocator.  Set version to NVP_ALLOCATOR_VERSION; all
 * three functions are required and receive `user` as first argument.  They
 * must behave like malloc/realloc/free (returning NULL on failure) and be
 * safe to call from any thread that uses a handle created with them.  The
 * library copies the struct: it need not outlive the constructor call. */
typedef struct nvp_allocator {
    unsigned version;
    void *user;
    void *(*alloc_fn)(void *user, size_t size);
    void *(*realloc_fn)(void *user, void *ptr, size_t size);
    void (*free_fn)(void *user, void *ptr);
} nvp_allocator;

/* ===========================================================================
 * Random state
 * ========================================================================= */
/* A seeded pseudo-random generator (xoshiro256** seeded through splitmix64).
 * The same seed gives the same stream of numbers on every machine: normal
 * draws use only IEEE-exact operations and the library's own logarithm.
 * Not thread-safe: every draw mutates it. */

/* Creates a generator seeded with `seed` (any value).
 * Errors: NVP_EINVAL (out NULL, bad allocator), NVP_ENOMEM. */
NVP_API int nvp_rng_create(nvp_rng **out, uint64_t seed,
                           const nvp_allocator *alloc);
/* Releases the generator; NULL is ignored. */
NVP_API void nvp_rng_free(nvp_rng *rng);
/* Restarts the stream as if freshly created with `seed`. */
NVP_API int nvp_rng_seed(nvp_rng *rng, uint64_t seed);
/* Writes n uniform floats in [0, 1). */
NVP_API int nvp_rng_uniform(nvp_rng *rng, size_t n, float *out);
/* Writes n standard normal floats (Marsaglia polar method). */
NVP_API int nvp_rng_normal(nvp_rng *rng, size_t n, float *out);
/* Writes n integers drawn uniformly from [0, bound) without modulo bias.
 * Errors: NVP_EINVAL also when bound == 0. */
NVP_API int nvp_rng_index(nvp_rng *rng, size_t n, uint64_t bound,
                          uint64_t *out);
/* Message of the last failed call on this handle ("" if none); the string
 * is thread-local, valid until the calling thread's next nvp_ call. */
NVP_API const char *nvp_rng_errmsg(const nvp_rng *rng);

/* ===========================================================================
 * Base distribution
 * ========================================================================= */
/* The distribution a flow starts from: the standard normal N(0, I), or a
 * mixture of Gaussians with full covariances (a flow over a mixture fitted
 * to its whitened training rows starts as that classical model). */

/* Creates N(0, I) over `dim` >= 1 dimensions.
 * Errors: NVP_EINVAL, NVP_EOVERFLOW (dim absurdly large), NVP_ENOMEM. */
NVP_API int nvp_base_create_normal(nvp_base **out, size_t dim,
                                   const nvp_allocator *alloc);
/* Releases a base the caller owns (not one adopted by a chain); NULL is
 * ignored. */
NVP_API void nvp_base_free(nvp_base *base);
/* Number of dimensions (0 if base is NULL). */
NVP_API size_t nvp_base_dim(const nvp_base *base);
/* Draws n points into x (n * dim floats). */
NVP_API int nvp_base_sample(const nvp_base *base, nvp_rng *rng, size_t n,
                            float *x);
/* Log density of n points x into lp (n floats).  A row holding NaN or an
 * infinity gets lp = NaN. */
NVP_API int nvp_base_log_prob(const nvp_base *base, size_t n, const float *x,
                              float *lp);
/* Gradient of the log density with respect to x, for n points, into g
 * (n * dim floats). */
NVP_API int nvp_base_log_prob_grad(const nvp_base *base, size_t n,
                                   const float *x, float *g);
/* Creates a mixture of k Gaussians over dim dimensions, 1 <= k <= 64 and
 * 1 <= dim <= 1024: weights[k] (positive; normalised to sum 1), means[k *
 * dim] and covs[k * dim * dim] (each a row-major dim x dim positive
 * definite matrix, exactly symmetric: entry (i, j) equal to (j, i)).  All
 * arrays are copied.  A weight so small against their sum that it rounds
 * to 0 in float is refused.  The base keeps each covariance as the
 * inverse of its Cholesky factor, in float.  Like every base, a mixture
 * is read-only once made: any number of threads may sample from it and
 * evaluate it at once (each with its own generator).
 * Errors: NVP_EINVAL (NULL, k or dim out of range, a weight that is not
 * positive, a non-finite value, a covariance that is not symmetric or
 * not positive definite, or so close to singular that its inverse factor
 * does not fit a float), NVP_ENOMEM. */
NVP_API int nvp_base_create_mixture(nvp_base **out, size_t dim, size_t k,
                                    const float *weights, const float *means,
                                    const float *covs,
                                    const nvp_allocator *alloc);
/* Fits a k-component mixture with full covariances to n rows x (n * dim
 * floats, n >= k) by expectation-maximisation: k-means++ seeds drawn
 * from rng and Lloyd passes, then EM until the mean log-likelihood gains
 * less than 1e-3 per pass (at most 200 passes), each covariance's
 * diagonal raised by 1e-6 times the rows' mean variance (more, up to
 * 10^6 times, where a component would be singular).  The same rows and
 * generator state give the same base.  Cost: about 2 n k dim^2 flops a
 * pass, one thread.  Errors: NVP_EINVAL (NULL, n < k, k or dim out of
 * range), NVP_ENONFINITE (a row holds NaN or an infinity, or rows so
 * extreme that a covariance stays singular or the likelihood overflows),
 * NVP_ENOMEM. */
NVP_API int nvp_base_fit_mixture(nvp_base **out, size_t n, size_t dim,
                                 const float *x, size_t k, nvp_rng *rng,
                                 const nvp_allocator *alloc);
/* A new base equal to src (the caller owns it).  Errors: NVP_EINVAL,
 * NVP_ENOMEM. */
NVP_API int nvp_base_clone(const nvp_base *src, nvp_base **out,
                           const nvp_allocator *alloc);
/* Number of mixture components: 1 for the standard normal, 0 if base is
 * NULL. */
NVP_API size_t nvp_base_components(const nvp_base *base);
/* The kind of a base (values pinned): */
#define NVP_BASE_NORMAL 1  /* N(0, I) */
#define NVP_BASE_MIXTURE 2 /* a Gaussian mixture */
/* NVP_BASE_NORMAL or NVP_BASE_MIXTURE; -1 if base is NULL. */
NVP_API int nvp_base_kind(const nvp_base *base);
/* Message of the last failed call on this base ("" if none); the string is
 * thread-local, valid until the calling thread's next nvp_ call.  The
 * other nvp_<type>_errmsg functions behave the same way. */
NVP_API const char *nvp_base_errmsg(const nvp_base *base);

/* ===========================================================================
 * Affine coupling layer
 * ========================================================================= */
/* An affine coupling layer over `dim` dimensions with a binary mask:
 * dimensions with mask 1 ("a") pass through unchanged and feed the
 * conditioner; dimensions with mask 0 ("b") are transformed:
 *
 *   (shift, log_scale) = MLP(x_a)          first |b| outputs shift, next |b|
 *   forward  (base -> data): y_b = x_b * exp(log_scale) + shift,
 *                            log|det dy/dx| = sum(log_scale)
 *   inverse  (data -> base): x_b = (y_b - shift) * exp(-log_scale),
 *                            ildj = log|det dx/dy| = -sum(log_scale)
 *
 * The conditioner is a multilayer perceptron |a| -> h_1 -> ... -> h_L -> 2|b|
 * with ReLU after every hidden layer and no activation on the output.
 *
 * Parameter layout (float, contiguous): for each dense layer in order,
 * its weight matrix W (fan_in x fan_out, row-major, so out = in * W + b)
 * followed by its bias b (fan_out).
 *
 * Initialisation (seeded from the nvp_rng passed to the constructor): every
 * weight and bias is drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
 * default of PyTorch's nn.Linear.  With NVP_INIT_ZERO_OUTPUT the output
 * layer's weights and biases are zero instead, so the fresh layer is the
 * identity map.
 */

/* Flags for the coupling and chain constructors. */
#define NVP_INIT_ZERO_OUTPUT 1u

/* Pass hidden == NULL (with n_hidden == 0) to get the default conditioner:
 * NVP_DEFAULT_HIDDEN_LAYERS hidden layers of NVP_DEFAULT_HIDDEN_WIDTH. */
#define NVP_DEFAULT_HIDDEN_LAYERS 2
#define NVP_DEFAULT_HIDDEN_WIDTH 512
/* Upper bounds that every constructor and loader enforces. */
#define NVP_MAX_DIM 65536
#define NVP_MAX_WIDTH 65536
#define NVP_MAX_HIDDEN_LAYERS 64
#define NVP_MAX_LAYERS 4096
#define NVP_MAX_PARAMS ((size_t)1 << 31)

/* Creates a coupling layer.
 *   dim       number of dimensions, 2 <= dim <= NVP_MAX_DIM
 *   mask      dim bytes, each 0 or 1, with at least one 0 and one 1
 *   n_hidden, hidden
 *             widths of the hidden layers (hidden[0..n_hidden-1]); n_hidden
 *             == 0 with hidden != NULL gives an affine (linear) conditioner;
 *             hidden == NULL with n_hidden == 0 gives the default.
 *   flags     0 or NVP_INIT_ZERO_OUTPUT
 *   rng       draws the initial parameters (advanced by the call)
 * The mask and hidden arrays are copied.
 * Errors: NVP_EINVAL, NVP_EOVERFLOW (more than NVP_MAX_PARAMS), NVP_ENOMEM. */
NVP_API int nvp_coupling_create(nvp_coupling **out, size_t dim,
                                const unsigned char *mask, size_t n_hidden,
                                const size_t *hidden, unsigned flags,
                                nvp_rng *rng, const nvp_allocator *alloc);
/* The tutorial's half split: with flip == 0 the layer conditions on
 * dimensions [0, dim/2) and transforms [dim/2, dim); with flip != 0 the
 * mask is the complement.  Other arguments as nvp_coupling_create. */
NVP_API int nvp_coupling_create_half(nvp_coupling **out, size_t dim,
                                     int flip, size_t n_hidden,
                                     const size_t *hidden, unsigned flags,
                                     nvp_rng *rng,
                                     const nvp_allocator *alloc);
/* A conditional coupling: its conditioner reads, besides x_a, a context
 * vector c of context_dim values per row (0 <= context_dim <=
 * NVP_MAX_DIM), so that shift and log-scale are functions of (x_a, c).
 * The conditioner's first layer then has na + context_dim inputs: the
 * rows of its W are x_a's (in increasing index order), then c's.  A layer
 * with context_dim > 0 is called through the nvp_layer_*_given functions (or
 * in a chain through the nvp_chain_*_given ones); context_dim == 0 gives
 * exactly the layer nvp_coupling_create gives, drawing the same numbers.
 * Other arguments and errors as nvp_coupling_create. */
NVP_API int nvp_coupling_create_conditional(nvp_coupling **out, size_t dim,
                                            size_t context_dim,
                                            const unsigned char *mask,
                                            size_t n_hidden,
                                            const size_t *hidden,
                                            unsigned flags, nvp_rng *rng,
                                            const nvp_allocator *alloc);
/* Releases a layer the caller owns; NULL, and a layer a chain has adopted
 * (freed with the chain), are ignored. */
NVP_API void nvp_coupling_free(nvp_coupling *layer);
/* Number of dimensions (0 if layer is NULL). */
NVP_API size_t nvp_coupling_dim(const nvp_coupling *layer);
/* Number of float parameters (the length of the layer's flat vector). */
NVP_API size_t nvp_coupling_num_params(const nvp_coupling *layer);
/* The conditioner's hidden widths: *n_hidden receives their number and,
 * when widths is not NULL, up to cap of them are copied.  Errors:
 * NVP_EINVAL (layer or n_hidden NULL), NVP_EBUFSIZE (cap < *n_hidden; the
 * first cap widths are copied). */
NVP_API int nvp_coupling_get_hidden(const nvp_coupling *layer, size_t cap,
                                    size_t *widths, size_t *n_hidden);
/* Copies the mask (dim bytes) into mask; dim must equal the layer's. */
NVP_API int nvp_coupling_get_mask(const nvp_coupling *layer, size_t dim,
                                  unsigned char *mask);
/* Copies the parameters out / in; count must equal num_params.  set_params
 * refuses (NVP_ENONFINITE) a vector holding NaN or an infinity and then
 * leaves the layer unchanged. */
NVP_API int nvp_coupling_get_params(const nvp_coupling *layer, size_t count,
                                    float *dst);
NVP_API int nvp_coupling_set_params(nvp_coupling *layer, size_t count,
                                    const float *src);
/* Forward map of n points x -> y (both n * dim; may be the same pointer);
 * logdet (n floats, may be NULL) receives log|det dy/dx| per point. */
NVP_API int nvp_coupling_forward(const nvp_coupling *layer, size_t n,
                                 const float *x, float *y, float *logdet);
/* Inverse map y -> x (may be the same pointer); ildj (may be NULL)
 * receives log|det dx/dy| per point. */
NVP_API int nvp_coupling_inverse(const nvp_coupling *layer, size_t n,
                                 const float *y, float *x, float *ildj);
/* Vector-Jacobian product of the inverse direction.  For a scalar L that
 * depends on x = inverse(y) and ildj, given dx = dL/dx (n * dim) and
 * dildj = dL/dildj (n floats; NULL means zero), writes dy = dL/dy (n * dim;
 * may be NULL) and ADDS dL/dparameters into grad (num_params floats; may be
 * NULL).  The inverse is recomputed from y inside the call. */
NVP_API int nvp_coupling_inverse_backward(const nvp_coupling *layer,
                                          size_t n, const float *y,
                                          const float *dx, const float *dildj,
                                          float *dy, float *grad);
/* Log-scale stabiliser: with bound c > 0 the layer uses
 * log_scale = c * tanh(raw / c) instead of the conditioner's raw output,
 * so every scale stays within [exp(-c), exp(c)] (a smooth clamp; its
 * gradient is part of the backward pass).  c == 0 (the default) turns it
 * off.  Errors: NVP_EINVAL for a negative or non-finite bound.  Needs
 * exclusive use of the layer. */
NVP_API int nvp_coupling_set_log_scale_clamp(nvp_coupling *layer,
                                             float bound);
/* The bound set above (0 when off or layer is NULL). */
NVP_API float nvp_coupling_log_scale_clamp(const nvp_coupling *layer);
/* The affine step's form.  NVP_AFFINE_EXP (every layer's default) is the
 * one above: base -> data y_b = x_b exp(log_scale) + shift, the log-scale
 * soft-clamped.  NVP_AFFINE_SIGMOID is nflows' AffineCouplingTransform,
 * written in the data -> base direction: x_b = y_b s + shift with s =
 * sigmoid(h + 2) + 1e-3, h the conditioner's second half (so base -> data
 * y_b = (x_b - shift) / s, log|det dy/dx| = -sum log s); the clamp does
 * not apply to it (s lies in (1e-3, 1.001)).  Set it before a chain
 * adopts the layer (NVP_EINVAL after); it is saved with the model (format
 * version 2).  Errors: NVP_EINVAL.  affine_form gives -1 for NULL. */
#define NVP_AFFINE_EXP 0
#define NVP_AFFINE_SIGMOID 1
NVP_API int nvp_coupling_set_affine_form(nvp_coupling *layer, int form);
NVP_API int nvp_coupling_affine_form(const nvp_coupling *layer);
/* The kernels of the layer's own calls (see nvp_chain_set_kernels); a
 * chain's calls use the chain's setting. */
NVP_API int nvp_coupling_set_kernels(nvp_coupling *layer, int kernels);
NVP_API int nvp_coupling_kernels(const nvp_coupling *layer);
/* Message of the last failed call on this layer (see nvp_base_errmsg). */
NVP_API const char *nvp_coupling_errmsg(const nvp_coupling *layer);

/* ===========================================================================
 * Layers of every kind
 * ========================================================================= */
/* A chain is a stack of layers of any kind; each has the forward (base to
 * data), inverse (data to base) and backward calls of the coupling above,
 * with the same conventions.  Besides the affine coupling:
 *
 *   permutation  y[i] = x[perm[i]]; no parameters, log-det 0.  Between
 *                couplings it lets every dimension condition every other.
 *   actnorm      y = x * exp(s) + b per dimension; parameters s (dim), then
 *                b (dim); log|det| = sum(s).  Starts as the identity.
 *   linear       y = L U x + b, L unit lower triangular, U upper triangular
 *                with diagonal exp(d); parameters: a dim x dim row-major
 *                matrix holding L below its diagonal, U above it and d on
 *                it, then b (dim); log|det| = sum(d).  Starts as the
 *                identity.
 *
 * nvp_chain_init_from_data sets actnorm and linear layers from data: an
 * actnorm layer standardises what it sees, a linear layer whitens it (the
 * Cholesky factor of the covariance, and the mean), so that a chain of a
 * linear layer and couplings created with NVP_INIT_ZERO_OUTPUT starts as
 * the full-covariance Gaussian fit of the data.
 *
 * A layer created here is owned by the caller until a chain adopts it
 * (nvp_chain_create_from_layers); release an unadopted one with
 * nvp_layer_free.  Errors: NVP_EINVAL (dim outside [1, NVP_MAX_DIM], perm
 * not a permutation of 0..dim-1, NULL arguments), NVP_EOVERFLOW (a linear
 * layer of more than NVP_MAX_PARAMS parameters), NVP_ENOMEM. */
NVP_API int nvp_layer_create_permutation(nvp_layer **out, size_t dim,
                                         const size_t *perm,
                                         const nvp_allocator *alloc);
/* A permutation drawn uniformly with rng (advanced by the call). */
NVP_API int nvp_layer_create_random_permutation(nvp_layer **out, size_t dim,
                                                nvp_rng *rng,
                                                const nvp_allocator *alloc);
NVP_API int nvp_layer_create_actnorm(nvp_layer **out, size_t dim,
                                     const nvp_allocator *alloc);
NVP_API int nvp_layer_create_linear(nvp_layer **out, size_t dim,
                                    const nvp_allocator *alloc);
/* The coupling as a layer of the stack (the same object: free it once,
 * with either nvp_coupling_free or nvp_layer_free), and back: NULL when
 * the layer is of another kind. */
NVP_API nvp_layer *nvp_coupling_as_layer(nvp_coupling *layer);
NVP_API const nvp_coupling *nvp_layer_as_coupling(const nvp_layer *layer);
/* Releases a layer the caller owns; NULL, and a layer a chain has adopted
 * (freed with the chain), are ignored. */
NVP_API void nvp_layer_free(nvp_layer *layer);
/* The kind's name ("affine coupling", "permutation", "actnorm", "linear");
 * "" for NULL.  A static string. */
NVP_API const char *nvp_layer_kind(const nvp_layer *layer);
NVP_API size_t nvp_layer_dim(const nvp_layer *layer);
NVP_API size_t nvp_layer_num_params(const nvp_layer *layer);
/* Copies count (== nvp_layer_num_params) parameters out or in; setting
 * refuses non-finite values (NVP_ENONFINITE) and NVP_EDIM for another
 * count. */
NVP_API int nvp_layer_get_params(const nvp_layer *layer, size_t count,
                                 float *dst);
NVP_API int nvp_layer_set_params(nvp_layer *layer, size_t count,
                                 const float *src);
/* As nvp_coupling_forward, _inverse and _inverse_backward. */
NVP_API int nvp_layer_forward(const nvp_layer *layer, size_t n,
                              const float *x, float *y, float *logdet);
NVP_API int nvp_layer_inverse(const nvp_layer *layer, size_t n,
                              const float *y, float *x, float *ildj);
NVP_API int nvp_layer_inverse_backward(const nvp_layer *layer, size_t n,
                                       const float *y, const float *dx,
                                       const float *dildj, float *dy,
                                       float *grad);
/* Context values per row the layer reads: a conditional coupling's
 * context_dim, 0 for every other layer (and for NULL). */
NVP_API size_t nvp_layer_context_dim(const nvp_layer *layer);
/* The calls above for a layer that reads a context: context holds n rows
 * of nvp_layer_context_dim values (NULL allowed when that is 0, and then
 * these are the calls above).  A row whose context holds NaN or an
 * infinity comes out as NaN, like a non-finite input row.  The plain calls
 * refuse a layer that reads a context (NVP_EINVAL).  inverse_backward_given
 * also writes dcontext (n rows of context values, may be NULL): dL/dc
 * through this layer, overwritten; it refuses non-finite context with
 * NVP_ENONFINITE before anything is written. */
NVP_API int nvp_layer_forward_given(const nvp_layer *layer, size_t n,
                                    const float *x, const float *context,
                                    float *y, float *logdet);
NVP_API int nvp_layer_inverse_given(const nvp_layer *layer, size_t n,
                                    const float *y, const float *context,
                                    float *x, float *ildj);
NVP_API int nvp_layer_inverse_backward_given(const nvp_layer *layer,
                                             size_t n, const float *y,
                                             const float *context,
                                             const float *dx,
                                             const float *dildj, float *dy,
                                             float *dcontext, float *grad);
/* The kernels of the layer's own calls (see nvp_chain_set_kernels); a
 * chain's calls use the chain's setting, and a layer a chain holds is set
 * through the chain. */
NVP_API int nvp_layer_set_kernels(nvp_layer *layer, int kernels);
NVP_API int nvp_layer_kernels(const nvp_layer *layer);
/* Message of the last failed call on this layer. */
NVP_API const char *nvp_layer_errmsg(const nvp_layer *layer);

/* ===========================================================================
 * Chain: a base distribution and K layers
 * ========================================================================= */
/* Sampling draws x_0 from the base and applies layer 1, then 2, ... K.
 * log_prob(y) = log p_base(f_1^-1(...f_K^-1(y))) + sum_k ildj_k.
 * The chain's parameters are one flat float vector: layer 1's parameters,
 * then layer 2's, and so on, each in its kind's layout (above). */

/* Builds a chain from a base and n_layers coupling layers.  On success the
 * chain takes ownership of `base` and of every layer (do not free them;
 * nvp_chain_free does); on failure the caller still owns them.  Every layer
 * must have the base's dimension and appear once.
 * Errors: NVP_EINVAL, NVP_EDIM, NVP_EOVERFLOW, NVP_ENOMEM. */
NVP_API int nvp_chain_create(nvp_chain **out, nvp_base *base,
                             size_t n_layers, nvp_coupling *const *layers,
                             const nvp_allocator *alloc);
/* As nvp_chain_create, with layers of any kind (see "Layers of every
 * kind"); applied in array order going forward (base to data). */
NVP_API int nvp_chain_create_from_layers(nvp_chain **out, nvp_base *base,
                                         size_t n_layers,
                                         nvp_layer *const *layers,
                                         const nvp_allocator *alloc);
/* Convenience: N(0, I) base and n_layers half-split couplings with
 * alternating flip (layer 1 flip = 0, layer 2 flip = 1, ...), each drawing
 * its own initial parameters from rng in order.  Other arguments as
 * nvp_coupling_create. */
NVP_API int nvp_chain_create_alternating(nvp_chain **out, size_t dim,
                                         size_t n_layers, size_t n_hidden,
                                         const size_t *hidden, unsigned flags,
                                         nvp_rng *rng,
                                         const nvp_allocator *alloc);
/* As nvp_chain_create_alternating, with conditional couplings that read
 * context_dim values per row (nvp_coupling_create_conditional): a model
 * of p(y | c).  context_dim == 0 gives nvp_chain_create_alternating's
 * chain. */
NVP_API int nvp_chain_create_conditional(nvp_chain **out, size_t dim,
                                         size_t context_dim, size_t n_layers,
                                         size_t n_hidden,
                                         const size_t *hidden,
                                         unsigned flags, nvp_rng *rng,
                                         const nvp_allocator *alloc);
/* Releases the chain, its base, its layers and its threads; NULL is
 * ignored.  No call on the chain may be running. */
NVP_API void nvp_chain_free(nvp_chain *chain);
/* Dimensions, layers and float parameters (0 if chain is NULL). */
NVP_API size_t nvp_chain_dim(const nvp_chain *chain);
/* Context values per row (0 for an unconditional chain).  A chain reads a
 * context when any of its layers does, and all such layers must read the
 * same number (nvp_chain_create* refuse others with NVP_EDIM). */
NVP_API size_t nvp_chain_context_dim(const nvp_chain *chain);
NVP_API size_t nvp_chain_num_layers(const nvp_chain *chain);
NVP_API size_t nvp_chain_num_params(const nvp_chain *chain);
/* The chain's flat parameter vector (num_params floats), owned by the
 * chain, valid until nvp_chain_free.  Writing through it changes the model
 * (e.g. after an all-reduce); do so only with exclusive use of the chain.
 * Nothing checks a value written here until the next gradient, training
 * or save call, each of which refuses parameters holding NaN or an
 * infinity with NVP_ENONFINITE (a NaN behind a ReLU can leave a log
 * density finite, so the evaluation calls do not notice it). */
NVP_API float *nvp_chain_params(nvp_chain *chain);
/* Copy the flat parameters out / in (count must equal num_params);
 * set_params refuses non-finite values and then changes nothing. */
NVP_API int nvp_chain_get_params(const nvp_chain *chain, size_t count,
                                 float *dst);
NVP_API int nvp_chain_set_params(nvp_chain *chain, size_t count,
                                 const float *src);
/* Layer k (0-based) as a read-only handle owned by the chain, or NULL when
 * k is out of range.  Its offset in the flat vector goes to *offset (may
 * be NULL).  nvp_layer_as_coupling gives the coupling view of an affine
 * coupling layer. */
NVP_API const nvp_layer *nvp_chain_layer(const nvp_chain *chain, size_t k,
                                         size_t *offset);
/* The chain's base distribution (owned by the chain). */
NVP_API const nvp_base *nvp_chain_base(const nvp_chain *chain);
/* Replaces the chain's base with `base` (same dimension), which the chain
 * then owns; the old base is freed.  Not while another thread uses the
 * chain.  On failure the chain is unchanged and the caller still owns
 * base.  Errors: NVP_EINVAL (NULL, a base that already belongs to a
 * chain, this one or another), NVP_EDIM. */
NVP_API int nvp_chain_set_base(nvp_chain *chain, nvp_base *base);
/* Column names: a chain may carry a name for each of its dim columns (as a
 * CSV header gives them), saved with the model (format version 2).  Each
 * name is 1 to NVP_MAX_COLUMN_NAME bytes without control characters;
 * names == NULL removes them (dim is then not read: pass 0).  The names
 * are copied.  Errors: NVP_EINVAL, NVP_EDIM (names given for a dim that
 * is not the chain's), NVP_ENOMEM; on error the names are unchanged.
 * Needs exclusive use. */
#define NVP_MAX_COLUMN_NAME 255
NVP_API int nvp_chain_set_column_names(nvp_chain *chain, size_t dim,
                                       const char *const *names);
/* Column j's name (a string owned by the chain, valid until the names
 * change or the chain is freed), or NULL when the chain has none or j is
 * out of range. */
NVP_API const char *nvp_chain_column_name(const nvp_chain *chain, size_t j);
/* Data-dependent initialisation: the n rows of data walk down the chain in
 * the inverse direction, and every actnorm and linear layer is set from
 * the rows as they reach it (see "Layers of every kind"); other layers are
 * unchanged.  Needs n >= 2 finite rows.  Errors: NVP_EINVAL, NVP_EOVERFLOW,
 * NVP_ENONFINITE (non-finite data, or a covariance that overflows),
 * NVP_ENOMEM; on error no parameter changes.  Needs exclusive use. */
NVP_API int nvp_chain_init_from_data(nvp_chain *chain, size_t n,
                                     const float *data);

/* Draws n points from the flow into y (n * dim); log_prob (n floats, may be
 * NULL) receives their log densities at no extra conditioner cost (-inf
 * for a draw whose forward pass overflowed, as for nvp_chain_log_prob). */
NVP_API int nvp_chain_sample(const nvp_chain *chain, nvp_rng *rng, size_t n,
                             float *y, float *log_prob);
/* Log density of n points y into lp (n floats).  A row holding NaN or an
 * infinity gets NaN.  A finite row so far out that the inverse overflows
 * the float range gets -inf (a density too small to represent), never NaN;
 * nvp_chain_inverse gives such a row as infinities or NaN. */
NVP_API int nvp_chain_log_prob(const nvp_chain *chain, size_t n,
                               const float *y, float *lp);
/* Base -> data through all layers (x and y may be the same pointer);
 * logdet (may be NULL) receives sum_k log|det| per point. */
NVP_API int nvp_chain_forward(const nvp_chain *chain, size_t n,
                              const float *x, float *y, float *logdet);
/* Data -> base (y and x may be the same pointer); ildj (may be NULL)
 * receives sum_k ildj_k per point. */
NVP_API int nvp_chain_inverse(const nvp_chain *chain, size_t n,
                              const float *y, float *x, float *ildj);
/* Forward pass that keeps every stage: stages holds (num_layers + 1) blocks
 * of n * dim floats; block 0 is a copy of x, block k the points after
 * layer k.  This is what the layer-by-layer figure needs.  x may be the
 * first block of stages itself (x == stages); it must not otherwise
 * overlap stages. */
NVP_API int nvp_chain_forward_trace(const nvp_chain *chain, size_t n,
                                    const float *x, float *stages);
/* Mean negative log-likelihood of the n points y and its gradient with
 * respect to every parameter.  grad (num_params floats) is OVERWRITTEN;
 * loss (may be NULL) receives the mean NLL.  Returns NVP_ENONFINITE when
 * the loss or any gradient entry is not finite (grad then holds garbage). */
NVP_API int nvp_chain_nll_grad(const nvp_chain *chain, size_t n,
                               const float *y, float *grad, float *loss);
/* One training step on a chain: draws `batch` rows of data (n_data rows of
 * dim floats) uniformly with replacement using rng (the row indices are
 * exactly those nvp_rng_index(rng, batch, n_data, ...) would give),
 * computes the mean NLL and its gradient, and applies opt (which must have
 * been created for nvp_chain_num_params(chain) parameters).  loss (may be
 * NULL) receives the minibatch's mean NLL before the step.  Refused with
 * NVP_ENONFINITE, changing neither the chain nor the optimizer: parameters
 * holding NaN or an infinity (the rng is then left as it was); a
 * minibatch holding NaN or an infinity; a loss or gradient that is not
 * finite, or a gradient too large for Adam; a step whose result would not
 * be finite (see nvp_adam_step).  In all but the first case the rng has
 * advanced.  The scratch gradient lives in the chain, so
 * a step allocates nothing after the first.  Needs exclusive use of chain,
 * opt and rng. */
NVP_API int nvp_chain_train_step(nvp_chain *chain, nvp_adam *opt,
                                 nvp_rng *rng, size_t n_data,
                                 const float *data, size_t batch,
                                 float *loss);
/* Conditional densities p(y | c).  A chain whose context_dim C is above
 * 0 is called through the _given forms below: each takes, besides what
 * the plain call takes, the context `context` of n rows of C floats (row i
 * conditions row i), and otherwise behaves exactly as the plain call
 * (whose documentation above applies).  The plain calls refuse such a
 * chain with NVP_EINVAL; on a chain with C == 0 the _given forms accept
 * context == NULL and are the plain calls, bit for bit.  A row whose
 * context holds NaN or an infinity is treated as a non-finite input row
 * (its outputs are NaN); the gradient and training calls refuse it with
 * NVP_ENONFINITE, as they refuse such data. */
NVP_API int nvp_chain_log_prob_given(const nvp_chain *chain, size_t n,
                                     const float *y, const float *context,
                                     float *lp);
/* One draw per context row: y (n * dim) ~ p(. | context row i). */
NVP_API int nvp_chain_sample_given(const nvp_chain *chain, nvp_rng *rng,
                                   size_t n, const float *context, float *y,
                                   float *log_prob);
/* n draws for one context (C floats): y ~ p(. | context). */
NVP_API int nvp_chain_sample_given_one(const nvp_chain *chain, nvp_rng *rng,
                                       size_t n, const float *context,
                                       float *y, float *log_prob);
NVP_API int nvp_chain_forward_given(const nvp_chain *chain, size_t n,
                                    const float *x, const float *context,
                                    float *y, float *logdet);
NVP_API int nvp_chain_inverse_given(const nvp_chain *chain, size_t n,
                                    const float *y, const float *context,
                                    float *x, float *ildj);
NVP_API int nvp_chain_forward_trace_given(const nvp_chain *chain, size_t n,
                                          const float *x,
                                          const float *context,
                                          float *stages);
NVP_API int nvp_chain_nll_grad_given(const nvp_chain *chain, size_t n,
                                     const float *y, const float *context,
                                     float *grad, float *loss);
/* Draws the minibatch's rows of data and of context with the same
 * indices. */
NVP_API int nvp_chain_train_step_given(nvp_chain *chain, nvp_adam *opt,
                                       nvp_rng *rng, size_t n_data,
                                       const float *data,
                                       const float *context, size_t batch,
                                       float *loss);
/* Data-dependent initialisation (nvp_chain_init_from_data) of a chain
 * that reads a context: the rows walk down with their context. */
NVP_API int nvp_chain_init_from_data_given(nvp_chain *chain, size_t n,
                                           const float *data,
                                           const float *context);

/* The score: the gradient of log p(y) with respect to y, for n finite rows
 * y, into dlp_dy (n * dim); lp (n floats, may be NULL) receives log p(y).
 * The _given form also writes dlp_dc (n * context_dim floats, may be
 * NULL), the gradient of log p(y | c) with respect to the context; one of
 * dlp_dy and dlp_dc may be NULL, not both (and dlp_dc alone only on a
 * chain that reads a context).  Computed by the hand-written
 * backward pass (the parameters' gradient is not formed).  Errors:
 * NVP_EINVAL, NVP_ENONFINITE (y or context not finite, or the parameters
 * hold NaN or an infinity), NVP_ENOMEM.  A row whose log density
 * overflows gives non-finite entries.  Thread-safety as log_prob. */
NVP_API int nvp_chain_score(const nvp_chain *chain, size_t n, const float *y,
                            float *dlp_dy, float *lp);
NVP_API int nvp_chain_score_given(const nvp_chain *chain, size_t n,
                                  const float *y, const float *context,
                                  float *dlp_dy, float *dlp_dc, float *lp);

/* Vector-Jacobian products of the forward direction (base to data), for
 * losses on samples y = f(x) such as the reparameterised ones of
 * variational inference.  For a scalar L that depends on y = forward(x)
 * and on logdet = log|det dy/dx| (per row), given dy = dL/dy (n * dim)
 * and dlogdet = dL/dlogdet (n floats; NULL means zero), writes dx = dL/dx
 * (n * dim; may be NULL; may be the same memory as x or dy) and ADDS
 * dL/dparameters into grad (num_params floats; may be NULL): adding lets
 * a loss of several terms (say a reverse-KL term and nvp_chain_nll_grad's
 * NLL, which overwrites) be summed into one gradient.  The forward is
 * recomputed from x inside the call, chunk by chunk, so the memory used
 * does not grow with n.  The _given forms take the context (n rows of
 * context_dim values) and also write dcontext = dL/dcontext (n rows;
 * may be NULL), OVERWRITTEN: the sum over the layers that read it.
 * Errors: NVP_EINVAL (NULL chain, x or dy, n == 0, a context missing or
 * given to the wrong form, as for the other _given calls), NVP_ENONFINITE
 * (x, dy, dlogdet or the context hold NaN or an infinity, or the
 * parameters do), NVP_ENOMEM; on error nothing is written.  A row whose
 * forward overflows gives non-finite entries.  Thread-safety as log_prob:
 * a const call; grad, dx and dcontext belong to the caller. */
NVP_API int nvp_chain_forward_backward(const nvp_chain *chain, size_t n,
                                       const float *x, const float *dy,
                                       const float *dlogdet, float *dx,
                                       float *grad);
NVP_API int nvp_chain_forward_backward_given(const nvp_chain *chain,
                                             size_t n, const float *x,
                                             const float *context,
                                             const float *dy,
                                             const float *dlogdet, float *dx,
                                             float *dcontext, float *grad);
/* The same for one layer of any kind (a layer a chain holds included):
 * grad is the layer's num_params floats, added into; dcontext is
 * overwritten. */
NVP_API int nvp_layer_forward_backward(const nvp_layer *layer, size_t n,
                                       const float *x, const float *dy,
                                       const float *dlogdet, float *dx,
                                       float *grad);
NVP_API int nvp_layer_forward_backward_given(const nvp_layer *layer,
                                             size_t n, const float *x,
                                             const float *context,
                                             const float *dy,
                                             const float *dlogdet, float *dx,
                                             float *dcontext, float *grad);

/* Reverse-KL (variational) training: fitting the flow q to a target
 * known up to its normalising constant, p(y) = p~(y) / Z, by minimising
 * KL(q || p) - log Z = E_q[log q(y) - log p~(y)] (the negative ELBO)
 * over draws y = f(z), z from the base.  The caller gives log p~ through
 * a callback: for n rows y (n * dim, row-major), it writes log_p (n
 * floats, log p~(y_i)) and dlogp_dy (n * dim, its gradient in y) and
 * returns 0; any other value stops the call, which returns that value
 * unchanged (use values other than the NVP_E* codes to tell them apart).
 * The callback runs on the calling thread, once per call, with the whole
 * batch, and must not call the chain. */
typedef int (*nvp_log_density_fn)(void *user, size_t n, size_t dim,
                                  const float *y, float *log_p,
                                  float *dlogp_dy);
/* One reverse-KL gradient: draws batch rows z from the base with rng
 * (the draws nvp_chain_sample makes), y = f(z), calls log_density(user,
 * batch, dim, y, ...), and writes loss (may be NULL) = mean over the rows
 * of log q(y) - log p~(y), with log q(y) = log p_base(z) - logdet, and
 * grad (num_params floats, OVERWRITTEN, as nvp_chain_nll_grad does) =
 * its gradient with respect to the parameters, through y = f(z):
 * dL/dy = -dlogp_dy / batch and dL/dlogdet = -1 / batch per row.
 * Errors: NVP_EINVAL, NVP_ENONFINITE (parameters holding NaN or an
 * infinity; a draw whose forward overflows, checked before the callback;
 * NaN or an infinity in log_p or dlogp_dy; a loss or gradient that is not
 * finite; grad then holds garbage), NVP_ENOMEM, or the callback's
 * nonzero return.  After the arguments' checks loss is written on every
 * path: the batch's loss once it was computed (also when the gradient
 * then turns out not finite, as nvp_chain_nll_grad does), NaN when it was
 * not (non-finite parameters, a failed or non-finite callback, no
 * memory).  The rng advances by the batch's draws.  Thread-safety as
 * nvp_chain_nll_grad (a const call; rng and grad belong to the caller). */
NVP_API int nvp_chain_reverse_kl_grad(const nvp_chain *chain, nvp_rng *rng,
                                      size_t batch,
                                      nvp_log_density_fn log_density,
                                      void *user, float *grad, float *loss);
/* One reverse-KL training step: the gradient above, then opt's update
 * through the same path as nvp_chain_train_step (clipping, average and
 * weight decay included).  loss (may be NULL) receives the batch's loss
 * before the step, also when the step is then refused, and NaN when no
 * loss was computed; it is left unwritten on bad arguments or non-finite
 * parameters, as by nvp_chain_train_step.  Refused, changing neither the chain nor the
 * optimizer, with the gradient's errors above or NVP_ENONFINITE for a
 * gradient too large for Adam or a step whose result would not be finite
 * (see nvp_chain_train_step); a callback's nonzero return is returned as
 * it is and refuses the step too.  In every case but bad arguments or
 * non-finite parameters the rng has advanced.  Uses the chain's scratch
 * gradient (allocated by the first step, shared with
 * nvp_chain_train_step).  Needs exclusive use of chain, opt and rng. */
NVP_API int nvp_chain_reverse_kl_step(nvp_chain *chain, nvp_adam *opt,
                                      nvp_rng *rng, size_t batch,
                                      nvp_log_density_fn log_density,
                                      void *user, float *loss);
/* The same for a chain that reads a context: context holds batch rows
 * (row i conditions draw i, and the callback's row i; the callback reads
 * the context through user if it needs it). */
NVP_API int nvp_chain_reverse_kl_grad_given(const nvp_chain *chain,
                                            nvp_rng *rng, size_t batch,
                                            const float *context,
                                            nvp_log_density_fn log_density,
                                            void *user, float *grad,
                                            float *loss);
NVP_API int nvp_chain_reverse_kl_step_given(nvp_chain *chain, nvp_adam *opt,
                                            nvp_rng *rng, size_t batch,
                                            const float *context,
                                            nvp_log_density_fn log_density,
                                            void *user, float *loss);

/* Sets the log-scale stabiliser of every affine coupling layer (see
 * nvp_coupling_set_log_scale_clamp); layers of other kinds have none. */
NVP_API int nvp_chain_set_log_scale_clamp(nvp_chain *chain, float bound);
/* Message of the last failed call on this chain (see nvp_base_errmsg). */
NVP_API const char *nvp_chain_errmsg(const nvp_chain *chain);

/* Threads.  A chain runs its batched calls on a pool of worker threads it
 * owns (POSIX threads; the calling thread takes part).  n_threads == 0
 * selects the number of online CPUs, at most NVP_MAX_THREADS (the
 * default); 1 runs everything on the calling thread.  The pool starts on
 * first use and stops in
 * nvp_chain_free.  Large batches are split by rows, a training step's
 * matrix products by output columns, never a sum, so every result is
 * bitwise identical whatever the thread count (but for the sign of a NaN
 * left in the outputs of a call that fails with NVP_ENONFINITE).  Small
 * problems stay on one thread.  When several threads call const
 * functions on one chain at once, one of them uses the pool and the
 * others run on their own thread.
 * If the pool cannot start on first use, the chain runs on the calling
 * thread (same results) until the next nvp_chain_set_threads.  As with any
 * threaded library, a chain whose pool has started cannot be used in a
 * child made by fork(); set 1 thread before forking, or create the chain
 * in the child.
 * Errors: NVP_EINVAL (more than NVP_MAX_THREADS), NVP_ETHREAD, NVP_ENOMEM;
 * on error the chain keeps its previous setting.  Needs exclusive use;
 * as a guard against breaking that rule, a call made while another thread
 * is inside a batched call that uses the pool returns NVP_EBUSY and
 * changes nothing (a guard only: other concurrent uses stay undefined). */
#define NVP_MAX_THREADS 1024
NVP_API int nvp_chain_set_threads(nvp_chain *chain, size_t n_threads);
/* Threads the chain's batched calls use (1 = the caller only). */
NVP_API size_t nvp_chain_threads(const nvp_chain *chain);

/* Kernels.  The compute kernels (matrix multiply, the single-input sweep,
 * the optimizer's update, the finiteness checks) are built for several
 * instruction sets, and each handle picks one level when it is created:
 * the best its CPU runs.  nvp_*_set_kernels chooses another:
 *   NVP_KERNELS_AUTO      the best this CPU runs (the default)
 *   NVP_KERNELS_PORTABLE  plain C, no fused multiply-add: results are
 *                         bitwise identical on every x86-64 machine (and
 *                         any other IEEE-754 one) with the same libm
 *   NVP_KERNELS_AVX2      AVX2 with FMA
 *   NVP_KERNELS_AVX512    AVX-512F
 * The matrix-multiply kernels of AVX2 and AVX-512 fuse multiply and add,
 * so their results differ from the portable ones in the last bits; the
 * other kernels give the same bits at every level.  Every level gives the
 * same bits for any thread count.
 * Errors: NVP_EINVAL (unknown value), NVP_EUNSUPPORTED (the CPU lacks the
 * level); on error the setting is unchanged.  Needs exclusive use of the
 * handle.  nvp_chain_set_kernels sets the chain's level for every batched
 * call on it, training included (the optimizer's update follows the
 * optimizer's own setting). */
#define NVP_KERNELS_AUTO 0
#define NVP_KERNELS_PORTABLE 1
#define NVP_KERNELS_AVX2 2
#define NVP_KERNELS_AVX512 3
NVP_API int nvp_chain_set_kernels(nvp_chain *chain, int kernels);
/* The level in use (never NVP_KERNELS_AUTO); -1 for NULL. */
NVP_API int nvp_chain_kernels(const nvp_chain *chain);

/* Precision of the conditioners' matrix products (since 0.6.0).
 *   NVP_PRECISION_FP32  float throughout (the default)
 *   NVP_PRECISION_BF16  each of the conditioners' matrix products with at
 *                       least 32 terms per output and more than 4 output
 *                       columns rounds both operands to bfloat16 (8
 *                       significant bits) and sums their products in
 *                       float, with the CPU's AVX512-BF16 dot-product
 *                       instructions: twice the float kernel's arithmetic
 *                       per instruction.
 * Everything else stays in float: parameters, the sums that make a
 * product's outputs, bias and activation, the couplings' affine step and
 * log-determinants, the base, the gradient and the optimizer's state.  An
 * output of a bfloat16 product is off by about 2^-8 of the sum of the
 * magnitudes of its terms (float: 2^-24); log densities and gradients
 * move accordingly (docs/bf16.md has the measured effect on training).
 * Subnormal values in those products are flushed to zero.  Results stay
 * bitwise identical for any thread count and batch split.  Unconditional
 * models of two dimensions whose conditioners have at most two hidden
 * layers (the tutorial's: one input, first two layers run as the exact
 * sweep) have no product that qualifies: the setting changes nothing
 * there; a third hidden layer, or a context, gives them products that do.
 * The setting covers the chain's own calls; calls on one of its layers
 * through nvp_chain_layer and nvp_layer_* run in float.  The bfloat16
 * products do not follow the kernel level (nvp_chain_set_kernels); the
 * float products still do.  The setting belongs to the handle, like the
 * thread count: it is not saved with the model.
 * Errors: NVP_EINVAL (unknown value), NVP_EUNSUPPORTED (the CPU, or the
 * compiler the library was built with, lacks AVX512-BF16: the chain stays
 * in float, and the caller chooses whether to go on); on error the setting
 * is unchanged.  Needs exclusive use of the chain. */
#define NVP_PRECISION_FP32 0
#define NVP_PRECISION_BF16 1
NVP_API int nvp_chain_set_precision(nvp_chain *chain, int precision);
/* The precision in use; -1 for NULL. */
NVP_API int nvp_chain_precision(const nvp_chain *chain);
/* Nonzero when this CPU and build run NVP_PRECISION_BF16. */
NVP_API int nvp_precision_supported(int precision);

/* ===========================================================================
 * Saving and loading
 * ========================================================================= */
/* The newest file format version this library writes; it reads every
 * version up to it.  A model whose layers are all affine couplings, and
 * every training state, is written as version 1, which every release
 * reads; a model with layers of other kinds needs version 2. */
#define NVP_FILE_FORMAT_VERSION 2

/* A model file holds a chain's architecture and parameters and, when a
 * scaler is passed, the scaler its data was standardised with (the format
 * is described in docs/file-format.md: versioned, little-endian, a CRC-32
 * per section).  Loading a saved chain gives bitwise the same parameters.
 * Loaders treat their input as hostile: truncated, corrupt, oversized or
 * inconsistent data is refused with NVP_EFORMAT (NVP_EVERSION for a format
 * version this library does not read), never read out of bounds, and
 * nothing larger than the data justifies is allocated. */

/* Serialises into buf (cap bytes).  *size receives the bytes needed; with
 * buf == NULL only the size is computed.  scaler may be NULL; its dim must
 * match the chain's, or for a conditional chain (context_dim C > 0) may be
 * dim + C: axes dim .. dim + C - 1 then standardise the context, and when
 * both the chain and the scaler hold column names, the scaler's names of
 * those axes are saved after the chain's (the scaler's names of the first
 * dim axes are not: the chain's stand for them).  Loading gives back a
 * scaler of as many axes, and when the file holds names for all of them,
 * with those names.  A conditional model's file is format version 2.
 * Errors: NVP_EINVAL also when the scaler names the context's axes but the
 * chain holds no names (the file keeps both in one list); NVP_EINVAL,
 * NVP_EDIM, NVP_ENONFINITE (a parameter is NaN or infinite, which
 * training with a step size so large that the parameters overflow can
 * cause: the loader would refuse the file, so it is not written),
 * NVP_EBUFSIZE (cap too small; *size tells how much is needed).  Safe to
 * call concurrently with other const calls on the chain. */
NVP_API int nvp_chain_save_buffer(const nvp_chain *chain,
                                  const nvp_scaler *scaler, size_t cap,
                                  void *buf, size_t *size);
/* Writes the model to path atomically: a temporary file in the same
 * directory, named "<path>.tmp-<pid>-<n>", is written, flushed to disk and
 * renamed over path, so a crash or a full disk never leaves a partial file
 * and never loses the previous one.  A process killed during a save leaves
 * its temporary behind; the next save to the same path removes the
 * temporaries of processes that no longer run.  A symbolic link is
 * followed (the file it names is replaced; the link stays).  An existing
 * path that is not a regular file (a device such as /dev/null, a FIFO) is
 * written straight through, without that guarantee, and is never replaced;
 * a directory is refused.  Errors: NVP_EINVAL, NVP_EDIM, NVP_ENONFINITE,
 * NVP_ENOMEM, NVP_EIO. */
NVP_API int nvp_chain_save_file(const nvp_chain *chain,
                                const nvp_scaler *scaler, const char *path);
/* Creates a chain (and, when scaler_out is not NULL, a scaler, or NULL if
 * the data holds none) from size bytes at data.  The caller owns the new
 * handles.  On error *out (and *scaler_out) are NULL.
 * Errors: NVP_EINVAL, NVP_EFORMAT, NVP_EVERSION, NVP_ENOMEM. */
NVP_API int nvp_chain_load_buffer(nvp_chain **out, nvp_scaler **scaler_out,
                                  size_t size, const void *data,
                                  const nvp_allocator *alloc);
/* Same from a file.  Errors: as above, and NVP_EIO. */
NVP_API int nvp_chain_load_file(nvp_chain **out, nvp_scaler **scaler_out,
                                const char *path,
                                const nvp_allocator *alloc);

/* ===========================================================================
 * Adam optimizer
 * ========================================================================= */
/* Adam (Kingma and Ba 2015) with bias correction, over a flat vector of
 * n_params floats:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t = t + 1
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Defaults: lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8. */

/* Creates an optimizer for n_params (1 .. NVP_MAX_PARAMS) parameters with
 * zero moments and the default settings.
 * Errors: NVP_EINVAL, NVP_EOVERFLOW, NVP_ENOMEM. */
NVP_API int nvp_adam_create(nvp_adam **out, size_t n_params,
                            const nvp_allocator *alloc);
/* Releases the optimizer; NULL is ignored. */
NVP_API void nvp_adam_free(nvp_adam *opt);
/* Setters refuse non-finite or out-of-range values with NVP_EINVAL:
 * lr > 0, 0 <= b1 < 1, 0 <= b2 < 1, eps > 0, and lr / (1 - b1), the size
 * of the first step, within the float range. */
NVP_API int nvp_adam_set_lr(nvp_adam *opt, float lr);
NVP_API int nvp_adam_set_betas(nvp_adam *opt, float b1, float b2);
NVP_API int nvp_adam_set_eps(nvp_adam *opt, float eps);
/* The current settings (0 for a NULL optimizer). */
NVP_API float nvp_adam_lr(const nvp_adam *opt);
NVP_API float nvp_adam_beta1(const nvp_adam *opt);
NVP_API float nvp_adam_beta2(const nvp_adam *opt);
NVP_API float nvp_adam_eps(const nvp_adam *opt);
/* The number of parameters it was created for (0 if opt is NULL). */
NVP_API size_t nvp_adam_num_params(const nvp_adam *opt);
/* Number of steps taken so far (t). */
NVP_API uint64_t nvp_adam_num_steps(const nvp_adam *opt);
/* Forgets the moments, the step count and the last gradient norm (not the
 * parameter average or the clipping limit, see nvp_adam_set_average and
 * nvp_adam_set_clip_norm). */
NVP_API int nvp_adam_reset(nvp_adam *opt);
/* One step: updates params (n floats) from grad (n floats); n must equal
 * n_params.  Refused with NVP_ENONFINITE, changing nothing (parameters,
 * moments, average, step count, recorded norm): a gradient holding NaN, an
 * infinity, or an entry of magnitude 1e18 or more (whose square would
 * overflow the second moment); params holding NaN or an infinity; and a
 * step whose result -- any new parameter, moment or average -- would not
 * be finite, whatever made it so.  A step that returns NVP_OK therefore
 * leaves every value finite. */
NVP_API int nvp_adam_step(nvp_adam *opt, size_t n, float *params,
                          const float *grad);
/* Message of the last failed call on this optimizer (see
 * nvp_base_errmsg). */
NVP_API const char *nvp_adam_errmsg(const nvp_adam *opt);
/* Parameter averaging (Polyak averaging as an exponential moving average):
 * a flow trained by Adam at a fixed step size jitters around a good
 * point, and the average of its recent parameters usually scores better
 * than the last iterate.  With averaging on, every applied step (here and
 * in nvp_chain_train_step) follows the parameter update with
 *     avg[i] = decay * avg[i] + (1 - decay) * params[i]
 * in float, in the same pass over memory and on the same threads, so the
 * result does not depend on the thread count.  A refused step changes
 * neither the parameters nor the average.
 *
 * set_average: decay in (0, 1) turns averaging on, or restarts it, from
 * params (n floats, n = n_params, all finite; copied): e.g. 0.999 averages
 * over roughly the last 1000 steps.  decay 0 turns it off and frees the
 * average (params and n are then not used).  Allocates n floats once,
 * when turned on; a later step allocates nothing.  Errors: NVP_EINVAL
 * (decay outside [0, 1) or NaN, params NULL), NVP_EDIM, NVP_ENONFINITE,
 * NVP_ENOMEM; after an error nothing has changed.
 * average_decay: the decay, or 0 when averaging is off (or opt is NULL).
 * get_average: copies the average into dst (n floats, n = n_params), for
 * example into nvp_chain_set_params to evaluate or save the averaged
 * model.  NVP_EINVAL when averaging is off.
 * The training state saved by nvp_adam_save_* includes the average and
 * its decay.  nvp_adam_reset leaves them as they are. */
NVP_API int nvp_adam_set_average(nvp_adam *opt, float decay, size_t n,
                                 const float *params);
NVP_API float nvp_adam_average_decay(const nvp_adam *opt);
NVP_API int nvp_adam_get_average(const nvp_adam *opt, size_t n, float *dst);
/* Gradient-norm clipping (as PyTorch's clip_grad_norm_ before a step):
 * with a limit max_norm > 0, every applied step (here and in
 * nvp_chain_train_step) first computes the Euclidean norm of the whole
 * gradient, and when it exceeds max_norm the update uses the gradient
 * times max_norm / norm, so one rare, huge minibatch gradient cannot
 * inflate Adam's second moment and stall the parameters it touches for
 * thousands of steps.  The caller's gradient is not modified.  The norm
 * is summed in double in a fixed order, so results do not depend on the
 * thread count.  Steps refused by nvp_adam_step's rules are refused as
 * before (clipping does not rescue an entry of 1e18 or more).
 *
 * set_clip_norm: max_norm > 0 (finite) turns clipping on or changes the
 * limit; 0 turns it off (the default) and frees its scratch.  Turning it
 * on allocates one double per 16384 parameters; changing the limit and
 * stepping allocate nothing.  Errors: NVP_EINVAL (negative, NaN or
 * infinite max_norm), NVP_ENOMEM; after an error nothing has changed.
 * clip_norm: the limit, or 0 when clipping is off (or opt is NULL).
 * last_grad_norm: the norm of the last applied gradient before clipping,
 * while clipping is on (0 before the first such step, after clipping is
 * turned off, after nvp_adam_reset, or for NULL), for example to log how
 * often it clips.
 * The training state saved by nvp_adam_save_* includes the limit (not the
 * last norm).  nvp_adam_reset keeps the limit. */
NVP_API int nvp_adam_set_clip_norm(nvp_adam *opt, float max_norm);
NVP_API float nvp_adam_clip_norm(const nvp_adam *opt);
NVP_API float nvp_adam_last_grad_norm(const nvp_adam *opt);

/* Weight decay, decoupled from the gradient as in AdamW (Loshchilov and
 * Hutter 2019): every applied step also takes lr * weight_decay * p off
 * each parameter p (its value before the step), pulling parameters
 * towards zero without passing through the moments.  0 (the default)
 * turns it off and leaves every bit of plain Adam.  Saved in training
 * states.  Errors: NVP_EINVAL (not finite, or negative). */
NVP_API int nvp_adam_set_weight_decay(nvp_adam *opt, float weight_decay);
NVP_API float nvp_adam_weight_decay(const nvp_adam *opt);

/* The kernels of the optimizer's update and gradient checks (see
 * nvp_chain_set_kernels; every level gives the same bits). */
NVP_API int nvp_adam_set_kernels(nvp_adam *opt, int kernels);
NVP_API int nvp_adam_kernels(const nvp_adam *opt);

/* The training state: the optimizer (settings, step count, moments, and
 * the parameter average when averaging is on) and,
 * when rng is not NULL, the generator that draws the minibatches, so that
 * a run resumed from it continues exactly as an uninterrupted one.  The
 * save and load functions behave as their chain counterparts (saving
 * refuses a non-finite parameter average with NVP_ENONFINITE); on load,
 * *rng_out (when not NULL) receives a new generator, or NULL if the state
 * holds none. */
NVP_API int nvp_adam_save_buffer(const nvp_adam *opt, const nvp_rng *rng,
                                 size_t cap, void *buf, size_t *size);
NVP_API int nvp_adam_save_file(const nvp_adam *opt, const nvp_rng *rng,
                               const char *path);
NVP_API int nvp_adam_load_buffer(nvp_adam **out, nvp_rng **rng_out,
                                 size_t size, const void *data,
                                 const nvp_allocator *alloc);
NVP_API int nvp_adam_load_file(nvp_adam **out, nvp_rng **rng_out,
                               const char *path, const nvp_allocator *alloc);


/* ===========================================================================
 * Toy data and standardisation
 * ========================================================================= */
/* The "two moons" set (as scikit-learn's make_moons): n points, the first
 * n/2 (rounded down) on the outer moon (label 0), the rest on the inner
 * one (label 1), evenly spaced along each arc, plus N(0, noise^2) noise on
 * both coordinates, then shuffled.  xy gets n * 2 floats; labels (may be
 * NULL) gets n ints.  noise >= 0 and finite. */
NVP_API int nvp_two_moons(nvp_rng *rng, size_t n, float noise, float *xy,
                          int *labels);

/* A per-axis standardiser: z = (x - mean) / sd, as scikit-learn's
 * StandardScaler (population sd; an axis with sd 0 keeps sd = 1). */

/* A fresh scaler is the identity (mean 0, sd 1). */
NVP_API int nvp_scaler_create(nvp_scaler **out, size_t dim,
                              const nvp_allocator *alloc);
/* Releases the scaler; NULL is ignored. */
NVP_API void nvp_scaler_free(nvp_scaler *scaler);
/* Number of axes (0 if scaler is NULL). */
NVP_API size_t nvp_scaler_dim(const nvp_scaler *scaler);
/* Estimates mean and sd from n rows (accumulated in double).  Non-finite
 * data is refused with NVP_ENONFINITE and the scaler is unchanged. */
NVP_API int nvp_scaler_fit(nvp_scaler *scaler, size_t n, const float *x);
/* z = (x - mean) / sd for n rows (x and z may be the same pointer); where
 * float would overflow in the middle (data near the ends of the float
 * range) the value is computed in double. */
NVP_API int nvp_scaler_transform(const nvp_scaler *scaler, size_t n,
                                 const float *x, float *z);
/* x = z * sd + mean (z and x may be the same pointer). */
NVP_API int nvp_scaler_inverse_transform(const nvp_scaler *scaler, size_t n,
                                         const float *z, float *x);
/* Copies mean and sd out (dim floats each; either may be NULL). */
NVP_API int nvp_scaler_get(const nvp_scaler *scaler, size_t dim, float *mean,
                           float *sd);
/* Sets mean and sd (dim floats each); sd must be finite and > 0. */
NVP_API int nvp_scaler_set(nvp_scaler *scaler, size_t dim,
                           const float *mean, const float *sd);
/* sum_i log(sd_i): subtract it from a log density of standardised data to
 * get the log density in the original units. */
NVP_API double nvp_scaler_log_det(const nvp_scaler *scaler);
/* Column names of the axes, as nvp_chain_set_column_names takes them
 * (dim must be the scaler's; 1 to NVP_MAX_COLUMN_NAME bytes each without
 * control characters; copied; names == NULL removes them, whatever
 * dim).  A model file keeps the names of a conditional chain's context
 * columns this way: see nvp_chain_save_buffer.  Errors: NVP_EINVAL,
 * NVP_EDIM, NVP_ENOMEM; on error the names are unchanged.  Needs
 * exclusive use. */
NVP_API int nvp_scaler_set_column_names(nvp_scaler *scaler, size_t dim,
                                        const char *const *names);
/* Axis j's name (owned by the scaler, valid until the names change or the
 * scaler is freed), or NULL when it has none or j is out of range. */
NVP_API const char *nvp_scaler_column_name(const nvp_scaler *scaler,
                                           size_t j);
/* Message of the last failed call on this scaler (see nvp_base_errmsg). */
NVP_API const char *nvp_scaler_errmsg(const nvp_scaler *scaler);

#ifdef __cplusplus
}
#endif

#endif /* NVPFLOW_H */
