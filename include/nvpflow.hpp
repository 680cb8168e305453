/* SPDX-License-Identifier: MIT */
/*
 * nvpflow.hpp - header-only C++17 wrapper around the libnvpflow C API.
 *
 * Everything lives in namespace nvp and forwards to the functions declared
 * in nvpflow.h; link against libnvpflow as for C (-lnvpflow -lm -pthread).
 *
 * Handles
 *   Rng, Base, Coupling, Layer, Chain, Adam and Scaler each own one C
 *   handle and release it with the matching nvp_*_free() in their
 *   destructor.  They are move-only: a moved-from object holds no handle
 *   (get() returns nullptr, operator bool is false) and every fallible call
 *   on it throws nvp::Error with NVP_EINVAL, as the C library does for a
 *   NULL handle.  get() gives the raw handle for calls into the C API;
 *   release() gives it up (the caller then frees it); X::adopt(raw) takes
 *   ownership of a handle created by the C API.  LayerView, CouplingView
 *   and BaseView are non-owning, read-only views of the layers and the base
 *   that a Chain owns; they are valid while that chain lives.
 *
 * Layers
 *   A Layer is a layer of any kind (Layer::permutation, ::actnorm, ::linear,
 *   or a Coupling moved into a Layer).  Chain::create and Chain::from_layers
 *   take a std::vector<Layer> by rvalue: on success the chain owns every
 *   layer (the vector is emptied), on failure nothing was taken.
 *
 * Conditional flows
 *   Chain::conditional and Coupling::conditional build models of p(y | c)
 *   with context_dim() values of context per row; such a chain or layer is
 *   called through the *_given members, which take the context as one
 *   more array (n rows of context_dim() floats), as in C.
 *
 * Reverse KL
 *   Chain::reverse_kl_grad and ::reverse_kl_step take the target's log
 *   density either as the C callback (nvp_log_density_fn and its user
 *   pointer) or as any callable f(n, dim, y, log_p, dlogp_dy) that fills
 *   the two outputs; an exception it throws stops the C call (the
 *   callback returns 1 to the library) and is rethrown, unchanged, once
 *   the call has returned, never through the C frames.
 *
 * Errors
 *   Every fallible call checks the C status and throws nvp::Error, which
 *   carries the NVP_E* code (code()) and the library's detailed message
 *   (message()); what() reads "<nvp_strerror(code)>: <message>".  For a call
 *   on a handle the message is that handle's nvp_*_errmsg(), cross-checked
 *   against the calling thread's nvp_errmsg() (the two agree unless another
 *   thread failed on the same handle in between, in which case this
 *   thread's own message is the one reported).  The convenience overloads
 *   taking std::vector also validate sizes themselves (NVP_EDIM when a
 *   length is not a whole number of rows, NVP_EOVERFLOW when a size would
 *   overflow) before calling the library.  std::bad_alloc may escape from
 *   the std::vector / std::string allocations of the wrapper itself.
 *   As in C, a failed call leaves models, optimizers and scalers unchanged.
 *
 * Arrays
 *   Each operation has a pointer + count overload mirroring the C call,
 *   arguments in the C order (the count before its array; flat, row-major,
 *   n rows of dim floats, caller-sized outputs) and a std::vector overload
 *   whose row count is derived from the input's length and whose outputs
 *   are sized by the wrapper.
 *
 * Thread-safety is that of the C API: const member functions may run
 *   concurrently on one object; non-const ones need exclusive use; an Rng
 *   is mutated by every draw.
 */
/* The wrapper needs C++17 (std::optional, inline variables).  Below it,
 * stop at one clear error: defining the include guard skips the rest of
 * the header, which would otherwise add a cascade of errors of its own.
 * C++ code on an older standard can use the C API (nvpflow.h) directly. */
#if !defined(__cplusplus)
#error "nvpflow.hpp is the C++ wrapper; C code includes nvpflow.h"
#define NVPFLOW_HPP
#elif (defined(_MSVC_LANG) ? _MSVC_LANG : __cplusplus) < 201703L
#error "nvpflow.hpp needs C++17 or later (e.g. -std=c++17); older C++ can use the C API in nvpflow.h"
#define NVPFLOW_HPP
#endif

#ifndef NVPFLOW_HPP
#define NVPFLOW_HPP

#include <nvpflow.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace nvp {

/* ===========================================================================
 * Version
 * ========================================================================= */
/* The version this header was written for (the NVP_VERSION_* macros). */
inline constexpr unsigned header_version_number = NVP_VERSION_NUMBER;
inline constexpr const char *header_version_string = NVP_VERSION_STRING;

/* The version of the library actually linked at run time. */
inline unsigned version_number() noexcept { return nvp_version_number(); }
inline const char *version_string() noexcept { return nvp_version_string(); }
/* True when the linked library is the one this header describes. */
inline bool version_matches() noexcept
{
    return nvp_version_number() == NVP_VERSION_NUMBER;
}

/* nvp_strerror: static description of a status code. */
inline const char *strerror(int code) noexcept { return nvp_strerror(code); }

/* The compute kernels a Chain, Coupling or Adam uses (nvp_*_set_kernels).
 * kernels() returns the level in use, never Auto (-1 cast to Kernels for
 * an object that holds no handle).  set_kernels throws NVP_EUNSUPPORTED
 * when the CPU lacks the level, NVP_EINVAL for a value that is none of
 * these, and then leaves the setting unchanged. */
enum class Kernels : int {
    Auto = NVP_KERNELS_AUTO,         /* the best this CPU runs */
    Portable = NVP_KERNELS_PORTABLE, /* plain C: the same bits everywhere */
    Avx2 = NVP_KERNELS_AVX2,         /* AVX2 with FMA */
    Avx512 = NVP_KERNELS_AVX512,     /* AVX-512F */
};

/* The precision of a Chain's conditioner products
 * (nvp_chain_set_precision): Fp32 (the default) or Bf16, which needs
 * AVX512-BF16 (precision_supported); set_precision throws NVP_EUNSUPPORTED
 * without it and leaves the setting unchanged. */
enum class Precision : int {
    Fp32 = NVP_PRECISION_FP32,
    Bf16 = NVP_PRECISION_BF16,
};

/* Whether this CPU and library run precision p. */
inline bool precision_supported(Precision p) noexcept
{
    return nvp_precision_supported(static_cast<int>(p)) != 0;
}

/* ===========================================================================
 * Error
 * ========================================================================= */
class Error : public std::runtime_error {
public:
    Error(int code, const std::string &message)
        : std::runtime_error(std::string(nvp_strerror(code)) + ": " +
                             message),
          code_(code), offset_(std::strlen(nvp_strerror(code)) + 2)
    {
    }
    /* The NVP_E* status code (negative). */
    int code() const noexcept { return code_; }
    /* The library's detailed message (what() without the code's prefix). */
    const char *message() const noexcept { return what() + offset_; }

private:
    int code_;
    std::size_t offset_;
};

namespace detail {

inline const char *handle_errmsg(const nvp_rng *h) { return nvp_rng_errmsg(h); }
inline const char *handle_errmsg(const nvp_base *h) { return nvp_base_errmsg(h); }
inline const char *handle_errmsg(const nvp_coupling *h)
{
    return nvp_coupling_errmsg(h);
}
inline const char *handle_errmsg(const nvp_layer *h) { return nvp_layer_errmsg(h); }
inline const char *handle_errmsg(const nvp_chain *h) { return nvp_chain_errmsg(h); }
inline const char *handle_errmsg(const nvp_adam *h) { return nvp_adam_errmsg(h); }
inline const char *handle_errmsg(const nvp_scaler *h)
{
    return nvp_scaler_errmsg(h);
}

inline std::string to_string(const char *s) { return s ? std::string(s) : std::string(); }

/* A failure with no handle involved (constructors, loaders): the thread's
 * own message. */
[[noreturn]] inline void throw_error(int code)
{
    std::string msg = to_string(nvp_errmsg());
    if (msg.empty())
        msg = nvp_strerror(code);
    throw Error(code, msg);
}

/* A failure of a call on handle h.  Both strings are copied at once: each
 * is valid only until the thread's next nvp_ call. */
template <class H>
[[noreturn]] inline void throw_error(int code, const H *h)
{
    std::string mine = to_string(nvp_errmsg());
    std::string own = h ? to_string(handle_errmsg(h)) : std::string();
    /* The handle's box is shared by every thread using the handle; the
     * thread-local message is always this call's.  They are equal unless
     * another thread failed on h in between. */
    std::string msg = (own.empty() || (!mine.empty() && mine != own)) ? mine : own;
    if (msg.empty())
        msg = nvp_strerror(code);
    throw Error(code, msg);
}

inline void check(int rc)
{
    if (rc != NVP_OK)
        throw_error(rc);
}

template <class H>
inline void check(int rc, const H *h)
{
    if (rc != NVP_OK)
        throw_error(rc, h);
}

[[noreturn]] inline void fail(int code, const std::string &where,
                              const std::string &what)
{
    throw Error(code, where + ": " + what);
}

/* a * b, refusing overflow. */
inline std::size_t mul(std::size_t a, std::size_t b, const char *where)
{
    if (a != 0 && b > static_cast<std::size_t>(-1) / a)
        fail(NVP_EOVERFLOW, where,
             std::to_string(a) + " x " + std::to_string(b) + " overflows size_t");
    return a * b;
}

/* The number of rows of `dim` floats in `count` floats.  With dim == 0 (a
 * moved-from handle) it returns 0 and leaves the error to the C call. */
inline std::size_t rows(std::size_t count, std::size_t dim, const char *where,
                        const char *what)
{
    if (dim == 0)
        return 0;
    if (count % dim != 0)
        fail(NVP_EDIM, where,
             std::string(what) + " holds " + std::to_string(count) +
                 " floats, not a whole number of rows of " +
                 std::to_string(dim));
    return count / dim;
}

/* hidden.data() for an empty vector may be NULL, which the C API reads as
 * "default conditioner"; an empty vector here means "no hidden layer". */
inline const std::size_t *hidden_ptr(const std::vector<std::size_t> &hidden) noexcept
{
    static const std::size_t none = 0;
    return hidden.empty() ? &none : hidden.data();
}

/* The context of a _given call as the C call takes it: n rows of cdim
 * floats (NVP_EDIM otherwise), nullptr when empty (a chain or layer that
 * reads no context takes NULL). */
inline const float *context_ptr(const std::vector<float> &context, std::size_t n,
                                std::size_t cdim, const char *where)
{
    if (context.size() != mul(n, cdim, where))
        fail(NVP_EDIM, where,
             "context holds " + std::to_string(context.size()) + " floats, not " +
                 std::to_string(n) + " rows of " + std::to_string(cdim));
    return context.empty() ? nullptr : context.data();
}

/* The std::vector form of a forward or inverse map: fn(n, in, out, ld)
 * is the C call; ld, when given, receives one float per row. */
template <class Fn>
inline std::vector<float> map_rows(const char *where, const char *what,
                                   std::size_t dim, const std::vector<float> &in,
                                   std::vector<float> *ld, Fn &&fn)
{
    const std::size_t n = rows(in.size(), dim, where, what);
    std::vector<float> out(in.size()), l(ld ? n : 0);
    fn(n, in.data(), out.data(), ld ? l.data() : nullptr);
    if (ld)
        *ld = std::move(l);
    return out;
}

/* The names a vector-Jacobian product's std::vector form uses in its
 * messages: the input rows, the incoming gradient, the log-determinant's
 * gradient, and what owns the parameters. */
struct VjpNames {
    const char *in, *din, *dld, *owner;
};

/* The std::vector form of a vector-Jacobian product fn(n, in, din, dld,
 * dout, grad) (an inverse_backward or forward_backward call): checks the
 * sizes, sizes an empty grad to num_params zeros, returns dout. */
template <class Fn>
inline std::vector<float> vjp_rows(const char *where, const VjpNames &names,
                                   std::size_t dim, std::size_t num_params,
                                   const std::vector<float> &in,
                                   const std::vector<float> &din,
                                   const std::vector<float> *dld,
                                   std::vector<float> *grad, Fn &&fn)
{
    const std::size_t n = rows(in.size(), dim, where, names.in);
    if (din.size() != in.size())
        fail(NVP_EDIM, where, std::string(names.din) + " holds " +
                                  std::to_string(din.size()) + " floats, " +
                                  names.in + " " + std::to_string(in.size()));
    if (dld && dld->size() != n)
        fail(NVP_EDIM, where, std::string(names.dld) + " holds " +
                                  std::to_string(dld->size()) + " floats for " +
                                  std::to_string(n) + " rows");
    if (grad && grad->empty())
        grad->assign(num_params, 0.0f);
    if (grad && grad->size() != num_params)
        fail(NVP_EDIM, where, "grad holds " + std::to_string(grad->size()) +
                                  " floats, the " + names.owner + " has " +
                                  std::to_string(num_params) + " parameters");
    std::vector<float> dout(in.size());
    fn(n, in.data(), din.data(), dld ? dld->data() : nullptr, dout.data(),
       grad ? grad->data() : nullptr);
    return dout;
}

/* The std::vector form of an inverse_backward call
 * fn(n, y, dx, dildj, dy, grad); returns dy. */
template <class Fn>
inline std::vector<float> backward_rows(const char *where, std::size_t dim,
                                        std::size_t num_params,
                                        const std::vector<float> &y,
                                        const std::vector<float> &dx,
                                        const std::vector<float> *dildj,
                                        std::vector<float> *grad, Fn &&fn)
{
    return vjp_rows(where, VjpNames{"y", "dx", "dildj", "layer"}, dim, num_params,
                    y, dx, dildj, grad, std::forward<Fn>(fn));
}

/* The std::vector form of a forward_backward call
 * fn(n, x, dy, dlogdet, dx, grad); returns dx. */
template <class Fn>
inline std::vector<float> forward_backward_rows(const char *where, const char *owner,
                                                std::size_t dim,
                                                std::size_t num_params,
                                                const std::vector<float> &x,
                                                const std::vector<float> &dy,
                                                const std::vector<float> *dlogdet,
                                                std::vector<float> *grad, Fn &&fn)
{
    return vjp_rows(where, VjpNames{"x", "dy", "dlogdet", owner}, dim, num_params,
                    x, dy, dlogdet, grad, std::forward<Fn>(fn));
}

/* A C++ callable as the library's nvp_log_density_fn, for one call:
 * call() is the callback and the adapter itself its user pointer.  A C++
 * exception must not unwind through the library's C frames, so call()
 * catches it, keeps it, and returns log_density_threw (positive, never an
 * NVP_E* code), which stops the C call; check() then rethrows it. */
inline constexpr int log_density_threw = 1;

template <class F>
class LogDensityAdapter {
public:
    explicit LogDensityAdapter(F &f) noexcept : f_(f) {}
    static int call(void *user, std::size_t n, std::size_t dim, const float *y,
                    float *log_p, float *dlogp_dy) noexcept
    {
        LogDensityAdapter *self = static_cast<LogDensityAdapter *>(user);
        try {
            self->f_(n, dim, y, log_p, dlogp_dy);
            return 0;
        } catch (...) {
            self->error_ = std::current_exception();
            return log_density_threw;
        }
    }
    void *user() noexcept { return this; }
    /* After the C call: the callable's exception if it threw, else the
     * library's error, if any. */
    template <class H>
    void check(int rc, const H *h)
    {
        if (error_) {
            std::exception_ptr e = error_;
            error_ = nullptr;
            std::rethrow_exception(e);
        }
        detail::check(rc, h);
    }

private:
    F &f_;
    std::exception_ptr error_;
};

template <class F>
inline constexpr bool is_log_density_v =
    std::is_invocable_v<F &, std::size_t, std::size_t, const float *, float *, float *>;

/* data() of an empty vector may be NULL, which the C API refuses even
 * with a count of 0 (a layer or chain without parameters): a valid
 * pointer that nothing is read from or written to. */
inline float *nonnull(std::vector<float> &v) noexcept
{
    static float none;
    return v.empty() ? &none : v.data();
}
inline const float *nonnull(const std::vector<float> &v) noexcept
{
    static const float none = 0.0f;
    return v.empty() ? &none : v.data();
}

inline Kernels to_kernels(int k) noexcept { return static_cast<Kernels>(k); }
inline int from_kernels(Kernels k) noexcept { return static_cast<int>(k); }

inline void free_handle(nvp_rng *h) noexcept { nvp_rng_free(h); }
inline void free_handle(nvp_base *h) noexcept { nvp_base_free(h); }
inline void free_handle(nvp_coupling *h) noexcept { nvp_coupling_free(h); }
inline void free_handle(nvp_layer *h) noexcept { nvp_layer_free(h); }
inline void free_handle(nvp_chain *h) noexcept { nvp_chain_free(h); }
inline void free_handle(nvp_adam *h) noexcept { nvp_adam_free(h); }
inline void free_handle(nvp_scaler *h) noexcept { nvp_scaler_free(h); }

/* Unique ownership of one C handle. */
template <class T>
class Owner {
public:
    explicit Owner(T *h = nullptr) noexcept : h_(h) {}
    Owner(const Owner &) = delete;
    Owner &operator=(const Owner &) = delete;
    Owner(Owner &&o) noexcept : h_(o.h_) { o.h_ = nullptr; }
    Owner &operator=(Owner &&o) noexcept
    {
        if (this != &o) {
            free_handle(h_);
            h_ = o.h_;
            o.h_ = nullptr;
        }
        return *this;
    }
    ~Owner() { free_handle(h_); }
    T *get() const noexcept { return h_; }
    T *release() noexcept
    {
        T *h = h_;
        h_ = nullptr;
        return h;
    }

private:
    T *h_;
};

struct adopt_tag {};

} // namespace detail

/* Saved model / training state bytes. */
using Bytes = std::vector<unsigned char>;

/* ===========================================================================
 * Rng
 * ========================================================================= */
class Rng {
public:
    explicit Rng(std::uint64_t seed, const nvp_allocator *alloc = nullptr)
        : h_(make(seed, alloc))
    {
    }
    /* Takes ownership of a handle from the C API (may be NULL). */
    static Rng adopt(nvp_rng *h) noexcept { return Rng(detail::adopt_tag{}, h); }

    Rng(const Rng &) = delete;
    Rng &operator=(const Rng &) = delete;
    Rng(Rng &&) noexcept = default;
    Rng &operator=(Rng &&) noexcept = default;
    ~Rng() = default;

    nvp_rng *get() const noexcept { return h_.get(); }
    nvp_rng *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

    void seed(std::uint64_t s) { detail::check(nvp_rng_seed(get(), s), get()); }

    void uniform(std::size_t n, float *out)
    {
        detail::check(nvp_rng_uniform(get(), n, out), get());
    }
    std::vector<float> uniform(std::size_t n)
    {
        std::vector<float> v(n);
        uniform(n, v.data());
        return v;
    }
    void normal(std::size_t n, float *out)
    {
        detail::check(nvp_rng_normal(get(), n, out), get());
    }
    std::vector<float> normal(std::size_t n)
    {
        std::vector<float> v(n);
        normal(n, v.data());
        return v;
    }
    void index(std::size_t n, std::uint64_t bound, std::uint64_t *out)
    {
        detail::check(nvp_rng_index(get(), n, bound, out), get());
    }
    std::vector<std::uint64_t> index(std::size_t n, std::uint64_t bound)
    {
        std::vector<std::uint64_t> v(n);
        index(n, bound, v.data());
        return v;
    }

private:
    Rng(detail::adopt_tag, nvp_rng *h) noexcept : h_(h) {}
    static nvp_rng *make(std::uint64_t seed, const nvp_allocator *alloc)
    {
        nvp_rng *h = nullptr;
        detail::check(nvp_rng_create(&h, seed, alloc));
        return h;
    }
    detail::Owner<nvp_rng> h_;
};

/* ===========================================================================
 * Two moons
 * ========================================================================= */
/* nvp_two_moons into caller buffers: xy gets n * 2 floats, labels (may be
 * nullptr) n ints. */
inline void two_moons(Rng &rng, std::size_t n, float noise, float *xy,
                      int *labels)
{
    detail::check(nvp_two_moons(rng.get(), n, noise, xy, labels), rng.get());
}
/* Returns n * 2 floats; labels, when given, is resized to n. */
inline std::vector<float> two_moons(Rng &rng, std::size_t n, float noise,
                                    std::vector<int> *labels = nullptr)
{
    std::vector<float> xy(detail::mul(n, 2, "nvp::two_moons"));
    std::vector<int> lab(labels ? n : 0);
    two_moons(rng, n, noise, xy.data(), labels ? lab.data() : nullptr);
    if (labels)
        *labels = std::move(lab);
    return xy;
}

/* ===========================================================================
 * Base distribution
 * ========================================================================= */
class Base;

namespace detail {
/* The const operations of a base, shared by Base and BaseView. */
template <class D>
class BaseOps {
    const nvp_base *h() const noexcept { return static_cast<const D *>(this)->get(); }

public:
    std::size_t dim() const noexcept { return nvp_base_dim(h()); }
    /* NVP_BASE_NORMAL or NVP_BASE_MIXTURE (-1 for an empty handle). */
    int kind() const noexcept { return nvp_base_kind(h()); }
    /* Mixture components: 1 for N(0, I), 0 for an empty handle. */
    std::size_t components() const noexcept { return nvp_base_components(h()); }
    /* nvp_base_clone: a new base equal to this one, owned by the caller
     * (defined after Base). */
    Base clone(const nvp_allocator *alloc = nullptr) const;

    void sample(Rng &rng, std::size_t n, float *x) const
    {
        check(nvp_base_sample(h(), rng.get(), n, x), h());
    }
    std::vector<float> sample(Rng &rng, std::size_t n) const
    {
        std::vector<float> x(mul(n, dim(), "nvp::Base::sample"));
        sample(rng, n, x.data());
        return x;
    }
    void log_prob(std::size_t n, const float *x, float *lp) const
    {
        check(nvp_base_log_prob(h(), n, x, lp), h());
    }
    std::vector<float> log_prob(const std::vector<float> &x) const
    {
        const std::size_t n = rows(x.size(), dim(), "nvp::Base::log_prob", "x");
        std::vector<float> lp(n);
        log_prob(n, x.data(), lp.data());
        return lp;
    }
    void log_prob_grad(std::size_t n, const float *x, float *g) const
    {
        check(nvp_base_log_prob_grad(h(), n, x, g), h());
    }
    std::vector<float> log_prob_grad(const std::vector<float> &x) const
    {
        const std::size_t n =
            rows(x.size(), dim(), "nvp::Base::log_prob_grad", "x");
        std::vector<float> g(x.size());
        log_prob_grad(n, x.data(), g.data());
        return g;
    }
};
} // namespace detail

/* A read-only view of a base owned elsewhere (a chain's). */
class BaseView : public detail::BaseOps<BaseView> {
public:
    explicit BaseView(const nvp_base *h) noexcept : h_(h) {}
    const nvp_base *get() const noexcept { return h_; }

private:
    const nvp_base *h_;
};

class Base : public detail::BaseOps<Base> {
public:
    /* N(0, I) over dim dimensions. */
    static Base normal(std::size_t dim, const nvp_allocator *alloc = nullptr)
    {
        nvp_base *h = nullptr;
        detail::check(nvp_base_create_normal(&h, dim, alloc));
        return Base(detail::adopt_tag{}, h);
    }
    /* nvp_base_create_mixture, exactly: k Gaussians over dim dimensions,
     * weights[k] (positive; normalised), means[k * dim] and covs[k * dim *
     * dim] (row-major symmetric positive definite); all copied. */
    static Base mixture(std::size_t dim, std::size_t k, const float *weights,
                        const float *means, const float *covs,
                        const nvp_allocator *alloc = nullptr)
    {
        nvp_base *h = nullptr;
        detail::check(nvp_base_create_mixture(&h, dim, k, weights, means, covs,
                                              alloc));
        return Base(detail::adopt_tag{}, h);
    }
    /* k = weights.size() components, dim = means.size() / k; NVP_EDIM when
     * means is not k rows or covs not k dim x dim matrices. */
    static Base mixture(const std::vector<float> &weights,
                        const std::vector<float> &means,
                        const std::vector<float> &covs,
                        const nvp_allocator *alloc = nullptr)
    {
        const std::size_t k = weights.size();
        if (k != 0 && means.size() % k != 0)
            detail::fail(NVP_EDIM, "nvp::Base::mixture",
                         "means holds " + std::to_string(means.size()) +
                             " floats, not " + std::to_string(k) + " means of equal length");
        const std::size_t dim = k != 0 ? means.size() / k : 0;
        if (covs.size() != detail::mul(k, detail::mul(dim, dim, "nvp::Base::mixture"),
                                       "nvp::Base::mixture"))
            detail::fail(NVP_EDIM, "nvp::Base::mixture",
                         "covs holds " + std::to_string(covs.size()) +
                             " floats, not " + std::to_string(k) + " matrices of " +
                             std::to_string(dim) + " x " + std::to_string(dim));
        return mixture(dim, k, detail::nonnull(weights), detail::nonnull(means),
                       detail::nonnull(covs), alloc);
    }
    /* nvp_base_fit_mixture, exactly: k components fitted by EM to the n
     * rows of x (n * dim floats, n >= k), seeds drawn from rng. */
    static Base fit_mixture(std::size_t n, std::size_t dim, const float *x,
                            std::size_t k, Rng &rng,
                            const nvp_allocator *alloc = nullptr)
    {
        nvp_base *h = nullptr;
        detail::check(nvp_base_fit_mixture(&h, n, dim, x, k, rng.get(), alloc));
        return Base(detail::adopt_tag{}, h);
    }
    /* The rows of x, dim floats each (NVP_EDIM otherwise). */
    static Base fit_mixture(const std::vector<float> &x, std::size_t dim,
                            std::size_t k, Rng &rng,
                            const nvp_allocator *alloc = nullptr)
    {
        const std::size_t n = detail::rows(x.size(), dim, "nvp::Base::fit_mixture", "x");
        return fit_mixture(n, dim, detail::nonnull(x), k, rng, alloc);
    }
    static Base adopt(nvp_base *h) noexcept { return Base(detail::adopt_tag{}, h); }

    Base(const Base &) = delete;
    Base &operator=(const Base &) = delete;
    Base(Base &&) noexcept = default;
    Base &operator=(Base &&) noexcept = default;
    ~Base() = default;

    nvp_base *get() const noexcept { return h_.get(); }
    nvp_base *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    BaseView view() const noexcept { return BaseView(h_.get()); }

private:
    Base(detail::adopt_tag, nvp_base *h) noexcept : h_(h) {}
    detail::Owner<nvp_base> h_;
};

template <class D>
inline Base detail::BaseOps<D>::clone(const nvp_allocator *alloc) const
{
    nvp_base *c = nullptr;
    check(nvp_base_clone(h(), &c, alloc), h());
    return Base::adopt(c);
}

/* ===========================================================================
 * Coupling layer
 * ========================================================================= */
namespace detail {
/* The const operations of a coupling layer, shared by Coupling and
 * CouplingView. */
template <class D>
class CouplingOps {
    const nvp_coupling *h() const noexcept
    {
        return static_cast<const D *>(this)->get();
    }

public:
    std::size_t dim() const noexcept { return nvp_coupling_dim(h()); }
    std::size_t num_params() const noexcept { return nvp_coupling_num_params(h()); }
    /* Context values per row the conditioner reads (0: unconditional).
     * The C API asks the layer view, which is the same object; the cast
     * only gets that view, nothing is written through it. */
    std::size_t context_dim() const noexcept
    {
        return nvp_layer_context_dim(
            nvp_coupling_as_layer(const_cast<nvp_coupling *>(h())));
    }
    float log_scale_clamp() const noexcept { return nvp_coupling_log_scale_clamp(h()); }
    /* NVP_AFFINE_EXP or NVP_AFFINE_SIGMOID (-1 for an object that holds
     * no handle). */
    int affine_form() const noexcept { return nvp_coupling_affine_form(h()); }
    /* The kernels of the layer's own calls (a chain's calls use the
     * chain's setting). */
    Kernels kernels() const noexcept { return to_kernels(nvp_coupling_kernels(h())); }

    /* d must equal dim(). */
    void get_mask(std::size_t d, unsigned char *mask) const
    {
        check(nvp_coupling_get_mask(h(), d, mask), h());
    }
    std::vector<unsigned char> mask() const
    {
        std::vector<unsigned char> m(dim());
        get_mask(m.size(), m.data());
        return m;
    }
    /* The conditioner's hidden widths (empty: an affine conditioner). */
    std::vector<std::size_t> hidden() const
    {
        std::size_t n = 0;
        check(nvp_coupling_get_hidden(h(), 0, nullptr, &n), h());
        std::vector<std::size_t> w(n);
        if (n)
            check(nvp_coupling_get_hidden(h(), w.size(), w.data(), &n), h());
        return w;
    }
    /* count must equal num_params(). */
    void get_params(std::size_t count, float *dst) const
    {
        check(nvp_coupling_get_params(h(), count, dst), h());
    }
    std::vector<float> get_params() const
    {
        std::vector<float> p(num_params());
        get_params(p.size(), p.data());
        return p;
    }

    /* x -> y (may alias); logdet may be nullptr. */
    void forward(std::size_t n, const float *x, float *y, float *logdet) const
    {
        check(nvp_coupling_forward(h(), n, x, y, logdet), h());
    }
    std::vector<float> forward(const std::vector<float> &x,
                               std::vector<float> *logdet = nullptr) const
    {
        return map_rows("nvp::Coupling::forward", "x", dim(), x, logdet,
                        [this](std::size_t n, const float *in, float *out,
                               float *ld) { forward(n, in, out, ld); });
    }
    /* y -> x (may alias); ildj may be nullptr. */
    void inverse(std::size_t n, const float *y, float *x, float *ildj) const
    {
        check(nvp_coupling_inverse(h(), n, y, x, ildj), h());
    }
    std::vector<float> inverse(const std::vector<float> &y,
                               std::vector<float> *ildj = nullptr) const
    {
        return map_rows("nvp::Coupling::inverse", "y", dim(), y, ildj,
                        [this](std::size_t n, const float *in, float *out,
                               float *ld) { inverse(n, in, out, ld); });
    }
    /* nvp_coupling_inverse_backward: dy (may be nullptr) gets dL/dy; grad
     * (may be nullptr) is ADDED to. */
    void inverse_backward(std::size_t n, const float *y, const float *dx,
                          const float *dildj, float *dy, float *grad) const
    {
        check(nvp_coupling_inverse_backward(h(), n, y, dx, dildj, dy, grad), h());
    }
    /* Returns dL/dy.  dildj may be nullptr (zero) or hold one float per
     * row.  grad, when given, is added to; an empty vector is first sized
     * to num_params() zeros, otherwise it must hold num_params() floats. */
    std::vector<float> inverse_backward(const std::vector<float> &y,
                                        const std::vector<float> &dx,
                                        const std::vector<float> *dildj = nullptr,
                                        std::vector<float> *grad = nullptr) const
    {
        return backward_rows(
            "nvp::Coupling::inverse_backward", dim(), num_params(), y, dx, dildj,
            grad,
            [this](std::size_t n, const float *yy, const float *dxx,
                   const float *dl, float *dyy, float *g) {
                inverse_backward(n, yy, dxx, dl, dyy, g);
            });
    }
};
} // namespace detail

/* A read-only view of a layer owned elsewhere (a chain's). */
class CouplingView : public detail::CouplingOps<CouplingView> {
public:
    explicit CouplingView(const nvp_coupling *h) noexcept : h_(h) {}
    const nvp_coupling *get() const noexcept { return h_; }

private:
    const nvp_coupling *h_;
};

class Coupling : public detail::CouplingOps<Coupling> {
public:
    /* nvp_coupling_create, exactly: hidden == nullptr with n_hidden == 0
     * is the default conditioner. */
    static Coupling create(std::size_t dim, const unsigned char *mask,
                           std::size_t n_hidden, const std::size_t *hidden,
                           unsigned flags, Rng &rng,
                           const nvp_allocator *alloc = nullptr)
    {
        nvp_coupling *h = nullptr;
        detail::check(nvp_coupling_create(&h, dim, mask, n_hidden, hidden,
                                          flags, rng.get(), alloc));
        return Coupling(detail::adopt_tag{}, h);
    }
    /* mask must hold dim bytes; hidden lists the hidden widths (empty: an
     * affine conditioner with no hidden layer). */
    static Coupling create(std::size_t dim, const std::vector<unsigned char> &mask,
                           const std::vector<std::size_t> &hidden,
                           unsigned flags, Rng &rng,
                           const nvp_allocator *alloc = nullptr)
    {
        check_mask(dim, mask);
        return create(dim, mask.data(), hidden.size(), detail::hidden_ptr(hidden),
                      flags, rng, alloc);
    }
    /* The default conditioner (NVP_DEFAULT_HIDDEN_LAYERS x
     * NVP_DEFAULT_HIDDEN_WIDTH). */
    static Coupling create(std::size_t dim, const std::vector<unsigned char> &mask,
                           unsigned flags, Rng &rng,
                           const nvp_allocator *alloc = nullptr)
    {
        check_mask(dim, mask);
        return create(dim, mask.data(), 0, nullptr, flags, rng, alloc);
    }
    /* nvp_coupling_create_half, exactly. */
    static Coupling half(std::size_t dim, bool flip, std::size_t n_hidden,
                         const std::size_t *hidden, unsigned flags, Rng &rng,
                         const nvp_allocator *alloc = nullptr)
    {
        nvp_coupling *h = nullptr;
        detail::check(nvp_coupling_create_half(&h, dim, flip ? 1 : 0, n_hidden,
                                               hidden, flags, rng.get(), alloc));
        return Coupling(detail::adopt_tag{}, h);
    }
    static Coupling half(std::size_t dim, bool flip,
                         const std::vector<std::size_t> &hidden, unsigned flags,
                         Rng &rng, const nvp_allocator *alloc = nullptr)
    {
        return half(dim, flip, hidden.size(), detail::hidden_ptr(hidden), flags,
                    rng, alloc);
    }
    static Coupling half(std::size_t dim, bool flip, unsigned flags, Rng &rng,
                         const nvp_allocator *alloc = nullptr)
    {
        return half(dim, flip, 0, nullptr, flags, rng, alloc);
    }
    /* nvp_coupling_create_conditional, exactly: the conditioner also
     * reads context_dim values per row (call it through a Layer's or a
     * Chain's _given calls).  context_dim 0 gives create()'s layer. */
    static Coupling conditional(std::size_t dim, std::size_t context_dim,
                                const unsigned char *mask, std::size_t n_hidden,
                                const std::size_t *hidden, unsigned flags,
                                Rng &rng, const nvp_allocator *alloc = nullptr)
    {
        nvp_coupling *h = nullptr;
        detail::check(nvp_coupling_create_conditional(&h, dim, context_dim, mask,
                                                      n_hidden, hidden, flags,
                                                      rng.get(), alloc));
        return Coupling(detail::adopt_tag{}, h);
    }
    /* mask must hold dim bytes; hidden as in create(). */
    static Coupling conditional(std::size_t dim, std::size_t context_dim,
                                const std::vector<unsigned char> &mask,
                                const std::vector<std::size_t> &hidden,
                                unsigned flags, Rng &rng,
                                const nvp_allocator *alloc = nullptr)
    {
        check_mask(dim, mask);
        return conditional(dim, context_dim, mask.data(), hidden.size(),
                           detail::hidden_ptr(hidden), flags, rng, alloc);
    }
    static Coupling adopt(nvp_coupling *h) noexcept
    {
        return Coupling(detail::adopt_tag{}, h);
    }

    Coupling(const Coupling &) = delete;
    Coupling &operator=(const Coupling &) = delete;
    Coupling(Coupling &&) noexcept = default;
    Coupling &operator=(Coupling &&) noexcept = default;
    ~Coupling() = default;

    nvp_coupling *get() const noexcept { return h_.get(); }
    nvp_coupling *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    CouplingView view() const noexcept { return CouplingView(h_.get()); }

    /* count must equal num_params(); NVP_ENONFINITE (no change) for NaN
     * or infinite values. */
    void set_params(std::size_t count, const float *src)
    {
        detail::check(nvp_coupling_set_params(get(), count, src), get());
    }
    void set_params(const std::vector<float> &p) { set_params(p.size(), p.data()); }
    void set_log_scale_clamp(float bound)
    {
        detail::check(nvp_coupling_set_log_scale_clamp(get(), bound), get());
    }
    /* NVP_AFFINE_EXP (the default) or NVP_AFFINE_SIGMOID (nflows' form);
     * only before a chain adopts the layer (NVP_EINVAL after). */
    void set_affine_form(int form)
    {
        detail::check(nvp_coupling_set_affine_form(get(), form), get());
    }
    /* The kernels of the layer's own calls. */
    void set_kernels(Kernels k)
    {
        detail::check(nvp_coupling_set_kernels(get(), detail::from_kernels(k)), get());
    }

private:
    Coupling(detail::adopt_tag, nvp_coupling *h) noexcept : h_(h) {}
    static void check_mask(std::size_t dim, const std::vector<unsigned char> &mask)
    {
        if (mask.size() != dim)
            detail::fail(NVP_EDIM, "nvp::Coupling::create",
                         "mask holds " + std::to_string(mask.size()) +
                             " bytes, dim is " + std::to_string(dim));
    }
    detail::Owner<nvp_coupling> h_;
};

/* ===========================================================================
 * Layers of every kind
 * ========================================================================= */
namespace detail {
/* The const operations of a layer of any kind, shared by Layer and
 * LayerView. */
template <class D>
class LayerOps {
    const nvp_layer *h() const noexcept { return static_cast<const D *>(this)->get(); }

public:
    /* "affine coupling", "permutation", "actnorm" or "linear" (a static
     * string; empty for an object that holds no handle). */
    std::string_view kind() const noexcept { return nvp_layer_kind(h()); }
    std::size_t dim() const noexcept { return nvp_layer_dim(h()); }
    std::size_t num_params() const noexcept { return nvp_layer_num_params(h()); }

    /* Whether the layer is an affine coupling, and its coupling view
     * (NVP_EINVAL for another kind); the view lives as long as the layer. */
    bool is_coupling() const noexcept { return nvp_layer_as_coupling(h()) != nullptr; }
    CouplingView as_coupling() const
    {
        const nvp_coupling *c = nvp_layer_as_coupling(h());
        if (!c)
            fail(NVP_EINVAL, "nvp::Layer::as_coupling",
                 h() ? "the layer is a " + std::string(kind()) +
                           ", not an affine coupling"
                     : std::string("the layer is NULL"));
        return CouplingView(c);
    }

    /* count must equal num_params(). */
    void get_params(std::size_t count, float *dst) const
    {
        check(nvp_layer_get_params(h(), count, dst), h());
    }
    std::vector<float> get_params() const
    {
        std::vector<float> p(num_params());
        get_params(p.size(), nonnull(p));
        return p;
    }

    /* x -> y, base to data (may alias); logdet may be nullptr. */
    void forward(std::size_t n, const float *x, float *y, float *logdet) const
    {
        check(nvp_layer_forward(h(), n, x, y, logdet), h());
    }
    std::vector<float> forward(const std::vector<float> &x,
                               std::vector<float> *logdet = nullptr) const
    {
        return map_rows("nvp::Layer::forward", "x", dim(), x, logdet,
                        [this](std::size_t n, const float *in, float *out,
                               float *ld) { forward(n, in, out, ld); });
    }
    /* y -> x, data to base (may alias); ildj may be nullptr. */
    void inverse(std::size_t n, const float *y, float *x, float *ildj) const
    {
        check(nvp_layer_inverse(h(), n, y, x, ildj), h());
    }
    std::vector<float> inverse(const std::vector<float> &y,
                               std::vector<float> *ildj = nullptr) const
    {
        return map_rows("nvp::Layer::inverse", "y", dim(), y, ildj,
                        [this](std::size_t n, const float *in, float *out,
                               float *ld) { inverse(n, in, out, ld); });
    }
    /* nvp_layer_inverse_backward: dy (may be nullptr) gets dL/dy; grad
     * (may be nullptr) is ADDED to. */
    void inverse_backward(std::size_t n, const float *y, const float *dx,
                          const float *dildj, float *dy, float *grad) const
    {
        check(nvp_layer_inverse_backward(h(), n, y, dx, dildj, dy, grad), h());
    }
    /* As CouplingView::inverse_backward. */
    std::vector<float> inverse_backward(const std::vector<float> &y,
                                        const std::vector<float> &dx,
                                        const std::vector<float> *dildj = nullptr,
                                        std::vector<float> *grad = nullptr) const
    {
        return backward_rows(
            "nvp::Layer::inverse_backward", dim(), num_params(), y, dx, dildj,
            grad,
            [this](std::size_t n, const float *yy, const float *dxx,
                   const float *dl, float *dyy, float *g) {
                inverse_backward(n, yy, dxx, dl, dyy, g);
            });
    }

    /* nvp_layer_forward_backward, the vector-Jacobian product of the
     * forward direction (base to data): dx (may be nullptr) gets dL/dx;
     * grad (may be nullptr) is ADDED to. */
    void forward_backward(std::size_t n, const float *x, const float *dy,
                          const float *dlogdet, float *dx, float *grad) const
    {
        check(nvp_layer_forward_backward(h(), n, x, dy, dlogdet, dx, grad), h());
    }
    /* Returns dL/dx.  dlogdet may be nullptr (zero) or hold one float per
     * row.  grad, when given, is added to; an empty vector is first sized
     * to num_params() zeros, otherwise it must hold num_params() floats. */
    std::vector<float> forward_backward(const std::vector<float> &x,
                                        const std::vector<float> &dy,
                                        const std::vector<float> *dlogdet = nullptr,
                                        std::vector<float> *grad = nullptr) const
    {
        return forward_backward_rows(
            "nvp::Layer::forward_backward", "layer", dim(), num_params(), x, dy,
            dlogdet, grad,
            [this](std::size_t n, const float *xx, const float *dyy, const float *dl,
                   float *dxx, float *g) { forward_backward(n, xx, dyy, dl, dxx, g); });
    }

    /* Context values per row the layer reads: a conditional coupling's
     * context_dim, 0 for every other layer. */
    std::size_t context_dim() const noexcept { return nvp_layer_context_dim(h()); }
    /* The calls above for a layer that reads a context: context holds n
     * rows of context_dim() floats (nullptr / empty when that is 0). */
    void forward_given(std::size_t n, const float *x, const float *context,
                       float *y, float *logdet) const
    {
        check(nvp_layer_forward_given(h(), n, x, context, y, logdet), h());
    }
    std::vector<float> forward_given(const std::vector<float> &x,
                                     const std::vector<float> &context,
                                     std::vector<float> *logdet = nullptr) const
    {
        return map_rows("nvp::Layer::forward_given", "x", dim(), x, logdet,
                        [&](std::size_t n, const float *in, float *out, float *ld) {
                            forward_given(n, in,
                                          context_ptr(context, n, context_dim(),
                                                      "nvp::Layer::forward_given"),
                                          out, ld);
                        });
    }
    void inverse_given(std::size_t n, const float *y, const float *context,
                       float *x, float *ildj) const
    {
        check(nvp_layer_inverse_given(h(), n, y, context, x, ildj), h());
    }
    std::vector<float> inverse_given(const std::vector<float> &y,
                                     const std::vector<float> &context,
                                     std::vector<float> *ildj = nullptr) const
    {
        return map_rows("nvp::Layer::inverse_given", "y", dim(), y, ildj,
                        [&](std::size_t n, const float *in, float *out, float *ld) {
                            inverse_given(n, in,
                                          context_ptr(context, n, context_dim(),
                                                      "nvp::Layer::inverse_given"),
                                          out, ld);
                        });
    }
    /* nvp_layer_inverse_backward_given: as inverse_backward, and dcontext
     * (may be nullptr) is OVERWRITTEN with dL/dcontext. */
    void inverse_backward_given(std::size_t n, const float *y, const float *context,
                                const float *dx, const float *dildj, float *dy,
                                float *dcontext, float *grad) const
    {
        check(nvp_layer_inverse_backward_given(h(), n, y, context, dx, dildj, dy,
                                               dcontext, grad),
              h());
    }
    /* As inverse_backward; dcontext, when given, is resized to the
     * context's size and receives dL/dcontext. */
    std::vector<float> inverse_backward_given(const std::vector<float> &y,
                                              const std::vector<float> &context,
                                              const std::vector<float> &dx,
                                              const std::vector<float> *dildj = nullptr,
                                              std::vector<float> *grad = nullptr,
                                              std::vector<float> *dcontext = nullptr) const
    {
        const char *where = "nvp::Layer::inverse_backward_given";
        std::vector<float> dc;
        std::vector<float> dy = backward_rows(
            where, dim(), num_params(), y, dx, dildj, grad,
            [&](std::size_t n, const float *yy, const float *dxx, const float *dl,
                float *dyy, float *g) {
                const float *c = context_ptr(context, n, context_dim(), where);
                dc.resize(dcontext ? context.size() : 0);
                inverse_backward_given(n, yy, c, dxx, dl, dyy,
                                       dcontext ? nonnull(dc) : nullptr, g);
            });
        if (dcontext)
            *dcontext = std::move(dc);
        return dy;
    }
    /* nvp_layer_forward_backward_given: as forward_backward, and dcontext
     * (may be nullptr) is OVERWRITTEN with dL/dcontext. */
    void forward_backward_given(std::size_t n, const float *x, const float *context,
                                const float *dy, const float *dlogdet, float *dx,
                                float *dcontext, float *grad) const
    {
        check(nvp_layer_forward_backward_given(h(), n, x, context, dy, dlogdet, dx,
                                               dcontext, grad),
              h());
    }
    /* As forward_backward; dcontext, when given, is resized to the
     * context's size and receives dL/dcontext. */
    std::vector<float> forward_backward_given(const std::vector<float> &x,
                                              const std::vector<float> &context,
                                              const std::vector<float> &dy,
                                              const std::vector<float> *dlogdet = nullptr,
                                              std::vector<float> *grad = nullptr,
                                              std::vector<float> *dcontext = nullptr) const
    {
        const char *where = "nvp::Layer::forward_backward_given";
        std::vector<float> dc;
        std::vector<float> dx = forward_backward_rows(
            where, "layer", dim(), num_params(), x, dy, dlogdet, grad,
            [&](std::size_t n, const float *xx, const float *dyy, const float *dl,
                float *dxx, float *g) {
                const float *c = context_ptr(context, n, context_dim(), where);
                dc.resize(dcontext ? context.size() : 0);
                forward_backward_given(n, xx, c, dyy, dl, dxx,
                                       dcontext ? nonnull(dc) : nullptr, g);
            });
        if (dcontext)
            *dcontext = std::move(dc);
        return dx;
    }
};
} // namespace detail

/* A read-only view of a layer owned elsewhere (a chain's, or a Layer's). */
class LayerView : public detail::LayerOps<LayerView> {
public:
    explicit LayerView(const nvp_layer *h) noexcept : h_(h) {}
    const nvp_layer *get() const noexcept { return h_; }

private:
    const nvp_layer *h_;
};

/* A layer of any kind, owned until a chain adopts it. */
class Layer : public detail::LayerOps<Layer> {
public:
    /* y[i] = x[perm[i]]: perm holds dim indices, a permutation of
     * 0..dim-1 (copied).  No parameters. */
    static Layer permutation(std::size_t dim, const std::size_t *perm,
                             const nvp_allocator *alloc = nullptr)
    {
        nvp_layer *h = nullptr;
        detail::check(nvp_layer_create_permutation(&h, dim, perm, alloc));
        return adopt(h);
    }
    /* dim is perm.size(). */
    static Layer permutation(const std::vector<std::size_t> &perm,
                             const nvp_allocator *alloc = nullptr)
    {
        return permutation(perm.size(), perm.data(), alloc);
    }
    /* A permutation drawn uniformly with rng (advanced by the call). */
    static Layer random_permutation(std::size_t dim, Rng &rng,
                                    const nvp_allocator *alloc = nullptr)
    {
        nvp_layer *h = nullptr;
        detail::check(nvp_layer_create_random_permutation(&h, dim, rng.get(), alloc));
        return adopt(h);
    }
    /* y = x * exp(s) + b per dimension; starts as the identity. */
    static Layer actnorm(std::size_t dim, const nvp_allocator *alloc = nullptr)
    {
        nvp_layer *h = nullptr;
        detail::check(nvp_layer_create_actnorm(&h, dim, alloc));
        return adopt(h);
    }
    /* y = L U x + b (LU-parameterised); starts as the identity. */
    static Layer linear(std::size_t dim, const nvp_allocator *alloc = nullptr)
    {
        nvp_layer *h = nullptr;
        detail::check(nvp_layer_create_linear(&h, dim, alloc));
        return adopt(h);
    }
    /* An affine coupling as a layer: takes c's handle (c is left empty).
     * Set its clamp and kernels before, through the Coupling. */
    static Layer coupling(Coupling &&c) noexcept { return Layer(std::move(c)); }
    Layer(Coupling &&c) noexcept : h_(nvp_coupling_as_layer(c.release())) {}
    /* Takes ownership of a handle from the C API (may be NULL). */
    static Layer adopt(nvp_layer *h) noexcept { return Layer(detail::adopt_tag{}, h); }

    Layer(const Layer &) = delete;
    Layer &operator=(const Layer &) = delete;
    Layer(Layer &&) noexcept = default;
    Layer &operator=(Layer &&) noexcept = default;
    ~Layer() = default;

    nvp_layer *get() const noexcept { return h_.get(); }
    nvp_layer *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    LayerView view() const noexcept { return LayerView(h_.get()); }
    /* The kernels of the layer's own calls (nvp_layer_set_kernels). */
    void set_kernels(Kernels k)
    {
        detail::check(nvp_layer_set_kernels(get(), detail::from_kernels(k)), get());
    }
    int kernels() const noexcept { return nvp_layer_kernels(get()); }

    /* count must equal num_params(); NVP_ENONFINITE (no change) for NaN
     * or infinite values. */
    void set_params(std::size_t count, const float *src)
    {
        detail::check(nvp_layer_set_params(get(), count, src), get());
    }
    void set_params(const std::vector<float> &p)
    {
        set_params(p.size(), detail::nonnull(p));
    }

private:
    Layer(detail::adopt_tag, nvp_layer *h) noexcept : h_(h) {}
    detail::Owner<nvp_layer> h_;
};

/* ===========================================================================
 * Scaler
 * ========================================================================= */
class Scaler {
public:
    /* The identity standardiser over dim dimensions. */
    explicit Scaler(std::size_t dim, const nvp_allocator *alloc = nullptr)
        : h_(make(dim, alloc))
    {
    }
    static Scaler adopt(nvp_scaler *h) noexcept
    {
        return Scaler(detail::adopt_tag{}, h);
    }

    Scaler(const Scaler &) = delete;
    Scaler &operator=(const Scaler &) = delete;
    Scaler(Scaler &&) noexcept = default;
    Scaler &operator=(Scaler &&) noexcept = default;
    ~Scaler() = default;

    nvp_scaler *get() const noexcept { return h_.get(); }
    nvp_scaler *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

    std::size_t dim() const noexcept { return nvp_scaler_dim(get()); }
    double log_det() const noexcept { return nvp_scaler_log_det(get()); }

    void fit(std::size_t n, const float *x)
    {
        detail::check(nvp_scaler_fit(get(), n, x), get());
    }
    void fit(const std::vector<float> &x)
    {
        fit(detail::rows(x.size(), dim(), "nvp::Scaler::fit", "x"), x.data());
    }
    /* x -> z (may alias). */
    void transform(std::size_t n, const float *x, float *z) const
    {
        detail::check(nvp_scaler_transform(get(), n, x, z), get());
    }
    std::vector<float> transform(const std::vector<float> &x) const
    {
        std::vector<float> z(x.size());
        transform(detail::rows(x.size(), dim(), "nvp::Scaler::transform", "x"),
                  x.data(), z.data());
        return z;
    }
    /* z -> x (may alias). */
    void inverse_transform(std::size_t n, const float *z, float *x) const
    {
        detail::check(nvp_scaler_inverse_transform(get(), n, z, x), get());
    }
    std::vector<float> inverse_transform(const std::vector<float> &z) const
    {
        std::vector<float> x(z.size());
        inverse_transform(
            detail::rows(z.size(), dim(), "nvp::Scaler::inverse_transform", "z"),
            z.data(), x.data());
        return x;
    }
    /* mean and sd (d = dim() floats each; either may be nullptr). */
    void get_mean_sd(std::size_t d, float *mean, float *sd) const
    {
        detail::check(nvp_scaler_get(get(), d, mean, sd), get());
    }
    std::vector<float> mean() const
    {
        std::vector<float> m(dim());
        get_mean_sd(m.size(), m.data(), nullptr);
        return m;
    }
    std::vector<float> sd() const
    {
        std::vector<float> s(dim());
        get_mean_sd(s.size(), nullptr, s.data());
        return s;
    }
    /* d = dim() floats each; sd must be finite and > 0. */
    void set_mean_sd(std::size_t d, const float *mean, const float *sd)
    {
        detail::check(nvp_scaler_set(get(), d, mean, sd), get());
    }
    void set_mean_sd(const std::vector<float> &mean, const std::vector<float> &sd)
    {
        if (mean.size() != sd.size())
            detail::fail(NVP_EDIM, "nvp::Scaler::set_mean_sd",
                         "mean holds " + std::to_string(mean.size()) +
                             " floats, sd " + std::to_string(sd.size()));
        set_mean_sd(mean.size(), mean.data(), sd.data());
    }

private:
    Scaler(detail::adopt_tag, nvp_scaler *h) noexcept : h_(h) {}
    static nvp_scaler *make(std::size_t dim, const nvp_allocator *alloc)
    {
        nvp_scaler *h = nullptr;
        detail::check(nvp_scaler_create(&h, dim, alloc));
        return h;
    }
    detail::Owner<nvp_scaler> h_;
};

/* ===========================================================================
 * Adam
 * ========================================================================= */
class Adam {
public:
    explicit Adam(std::size_t n_params, const nvp_allocator *alloc = nullptr)
        : h_(make(n_params, alloc))
    {
    }
    static Adam adopt(nvp_adam *h) noexcept { return Adam(detail::adopt_tag{}, h); }

    Adam(const Adam &) = delete;
    Adam &operator=(const Adam &) = delete;
    Adam(Adam &&) noexcept = default;
    Adam &operator=(Adam &&) noexcept = default;
    ~Adam() = default;

    nvp_adam *get() const noexcept { return h_.get(); }
    nvp_adam *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

    /* Setters return *this so they chain: adam.set_lr(1e-3f).set_eps(1e-7f). */
    Adam &set_lr(float lr)
    {
        detail::check(nvp_adam_set_lr(get(), lr), get());
        return *this;
    }
    Adam &set_betas(float b1, float b2)
    {
        detail::check(nvp_adam_set_betas(get(), b1, b2), get());
        return *this;
    }
    Adam &set_eps(float eps)
    {
        detail::check(nvp_adam_set_eps(get(), eps), get());
        return *this;
    }
    float lr() const noexcept { return nvp_adam_lr(get()); }
    float beta1() const noexcept { return nvp_adam_beta1(get()); }
    float beta2() const noexcept { return nvp_adam_beta2(get()); }
    float eps() const noexcept { return nvp_adam_eps(get()); }
    /* The kernels of the update and the gradient checks (every level gives
     * the same bits). */
    Adam &set_kernels(Kernels k)
    {
        detail::check(nvp_adam_set_kernels(get(), detail::from_kernels(k)), get());
        return *this;
    }
    Kernels kernels() const noexcept { return detail::to_kernels(nvp_adam_kernels(get())); }
    std::size_t num_params() const noexcept { return nvp_adam_num_params(get()); }
    std::uint64_t steps() const noexcept { return nvp_adam_num_steps(get()); }
    void reset() { detail::check(nvp_adam_reset(get()), get()); }

    /* n must equal num_params(). */
    void step(std::size_t n, float *params, const float *grad)
    {
        detail::check(nvp_adam_step(get(), n, params, grad), get());
    }
    void step(std::vector<float> &params, const std::vector<float> &grad)
    {
        if (params.size() != grad.size())
            detail::fail(NVP_EDIM, "nvp::Adam::step",
                         "params hold " + std::to_string(params.size()) +
                             " floats, grad " + std::to_string(grad.size()));
        step(params.size(), params.data(), grad.data());
    }

    /* The parameter average (nvp_adam_set_average): decay in (0, 1) starts
     * it from params, 0 turns it off. */
    Adam &set_average(float decay, std::size_t n, const float *params)
    {
        detail::check(nvp_adam_set_average(get(), decay, n, params), get());
        return *this;
    }
    Adam &set_average(float decay, const std::vector<float> &params)
    {
        return set_average(decay, params.size(), params.data());
    }
    float average_decay() const noexcept { return nvp_adam_average_decay(get()); }

    /* Gradient-norm clipping (nvp_adam_set_clip_norm): max_norm > 0 turns
     * it on, 0 off. */
    Adam &set_clip_norm(float max_norm)
    {
        detail::check(nvp_adam_set_clip_norm(get(), max_norm), get());
        return *this;
    }
    float clip_norm() const noexcept { return nvp_adam_clip_norm(get()); }
    /* Decoupled weight decay (nvp_adam_set_weight_decay); 0 is off. */
    Adam &set_weight_decay(float weight_decay)
    {
        detail::check(nvp_adam_set_weight_decay(get(), weight_decay), get());
        return *this;
    }
    float weight_decay() const noexcept { return nvp_adam_weight_decay(get()); }
    float last_grad_norm() const noexcept { return nvp_adam_last_grad_norm(get()); }
    std::vector<float> average() const
    {
        std::vector<float> out(num_params());
        detail::check(nvp_adam_get_average(get(), out.size(), out.data()), get());
        return out;
    }

    /* The training state; rng (may be nullptr) is saved along. */
    void save(const std::string &path, const Rng *rng = nullptr) const
    {
        detail::check(nvp_adam_save_file(get(), rng ? rng->get() : nullptr,
                                         path.c_str()),
                      get());
    }
    /* Bytes needed by save_buffer. */
    std::size_t saved_size(const Rng *rng = nullptr) const
    {
        std::size_t size = 0;
        detail::check(nvp_adam_save_buffer(get(), rng ? rng->get() : nullptr, 0, nullptr, &size),
                      get());
        return size;
    }
    /* Into buf (cap bytes); returns the bytes written. */
    std::size_t save_buffer(std::size_t cap, void *buf, const Rng *rng = nullptr) const
    {
        std::size_t size = 0;
        detail::check(nvp_adam_save_buffer(get(), rng ? rng->get() : nullptr, cap, buf, &size),
                      get());
        return size;
    }
    Bytes save_buffer(const Rng *rng = nullptr) const
    {
        Bytes b(saved_size(rng));
        b.resize(save_buffer(b.size(), b.data(), rng));
        return b;
    }

    static Adam load(const std::string &path, const nvp_allocator *alloc = nullptr)
    {
        nvp_adam *h = nullptr;
        detail::check(nvp_adam_load_file(&h, nullptr, path.c_str(), alloc));
        return adopt(h);
    }
    /* rng receives the saved generator, or is reset when the state has none. */
    static Adam load(const std::string &path, std::optional<Rng> &rng,
                     const nvp_allocator *alloc = nullptr)
    {
        nvp_adam *h = nullptr;
        nvp_rng *r = nullptr;
        detail::check(nvp_adam_load_file(&h, &r, path.c_str(), alloc));
        return finish_load(h, r, rng);
    }
    static Adam load_buffer(std::size_t size, const void *data,
                            const nvp_allocator *alloc = nullptr)
    {
        nvp_adam *h = nullptr;
        detail::check(nvp_adam_load_buffer(&h, nullptr, size, data, alloc));
        return adopt(h);
    }
    static Adam load_buffer(std::size_t size, const void *data,
                            std::optional<Rng> &rng,
                            const nvp_allocator *alloc = nullptr)
    {
        nvp_adam *h = nullptr;
        nvp_rng *r = nullptr;
        detail::check(nvp_adam_load_buffer(&h, &r, size, data, alloc));
        return finish_load(h, r, rng);
    }
    static Adam load(const Bytes &buf, const nvp_allocator *alloc = nullptr)
    {
        return load_buffer(buf.size(), buf.data(), alloc);
    }
    static Adam load(const Bytes &buf, std::optional<Rng> &rng,
                     const nvp_allocator *alloc = nullptr)
    {
        return load_buffer(buf.size(), buf.data(), rng, alloc);
    }

private:
    Adam(detail::adopt_tag, nvp_adam *h) noexcept : h_(h) {}
    static nvp_adam *make(std::size_t n_params, const nvp_allocator *alloc)
    {
        nvp_adam *h = nullptr;
        detail::check(nvp_adam_create(&h, n_params, alloc));
        return h;
    }
    static Adam finish_load(nvp_adam *h, nvp_rng *r, std::optional<Rng> &rng) noexcept
    {
        Adam a = adopt(h);
        if (r)
            rng.emplace(Rng::adopt(r));
        else
            rng.reset();
        return a;
    }
    detail::Owner<nvp_adam> h_;
};

/* ===========================================================================
 * Chain
 * ========================================================================= */
class Chain {
public:
    /* nvp_chain_create: on success the chain takes base and every layer
     * (they are left empty); on failure they are untouched. */
    static Chain create(Base &&base, std::vector<Coupling> &&layers,
                        const nvp_allocator *alloc = nullptr)
    {
        std::vector<nvp_coupling *> raw;
        raw.reserve(layers.size());
        for (const Coupling &l : layers)
            raw.push_back(l.get());
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_create(&h, base.get(), raw.size(), raw.data(), alloc));
        base.release();
        for (Coupling &l : layers)
            l.release();
        layers.clear();
        return adopt(h);
    }
    /* nvp_chain_create_from_layers: layers of any kind, applied in vector
     * order going forward (base to data).  On success the chain takes base
     * and every layer (they are left empty, layers is cleared); on failure
     * they are untouched. */
    static Chain create(Base &&base, std::vector<Layer> &&layers,
                        const nvp_allocator *alloc = nullptr)
    {
        std::vector<nvp_layer *> raw;
        raw.reserve(layers.size());
        for (const Layer &l : layers)
            raw.push_back(l.get());
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_create_from_layers(&h, base.get(), raw.size(),
                                                   raw.data(), alloc));
        base.release();
        for (Layer &l : layers)
            l.release();
        layers.clear();
        return adopt(h);
    }
    /* The same over an N(0, I) base of the first layer's dimension. */
    static Chain from_layers(std::vector<Layer> &&layers,
                             const nvp_allocator *alloc = nullptr)
    {
        if (layers.empty() || !layers.front())
            detail::fail(NVP_EINVAL, "nvp::Chain::from_layers",
                         layers.empty() ? "no layers" : "layers[0] is empty");
        return create(Base::normal(layers.front().dim(), alloc), std::move(layers),
                      alloc);
    }
    /* nvp_chain_create_alternating, exactly: hidden == nullptr with
     * n_hidden == 0 is the default conditioner. */
    static Chain alternating(std::size_t dim, std::size_t n_layers,
                             std::size_t n_hidden, const std::size_t *hidden,
                             unsigned flags, Rng &rng,
                             const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_create_alternating(&h, dim, n_layers, n_hidden,
                                                   hidden, flags, rng.get(), alloc));
        return adopt(h);
    }
    /* hidden lists the hidden widths of every conditioner (empty: affine
     * conditioners with no hidden layer). */
    static Chain alternating(std::size_t dim, std::size_t n_layers,
                             const std::vector<std::size_t> &hidden,
                             unsigned flags, Rng &rng,
                             const nvp_allocator *alloc = nullptr)
    {
        return alternating(dim, n_layers, hidden.size(), detail::hidden_ptr(hidden),
                           flags, rng, alloc);
    }
    /* The default conditioner. */
    static Chain alternating(std::size_t dim, std::size_t n_layers, unsigned flags,
                             Rng &rng, const nvp_allocator *alloc = nullptr)
    {
        return alternating(dim, n_layers, 0, nullptr, flags, rng, alloc);
    }
    /* nvp_chain_create_conditional, exactly: alternating half-split
     * couplings whose conditioners also read context_dim values per row,
     * a model of p(y | c); context_dim 0 is alternating()'s chain. */
    static Chain conditional(std::size_t dim, std::size_t context_dim,
                             std::size_t n_layers, std::size_t n_hidden,
                             const std::size_t *hidden, unsigned flags, Rng &rng,
                             const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_create_conditional(&h, dim, context_dim, n_layers,
                                                   n_hidden, hidden, flags,
                                                   rng.get(), alloc));
        return adopt(h);
    }
    static Chain conditional(std::size_t dim, std::size_t context_dim,
                             std::size_t n_layers,
                             const std::vector<std::size_t> &hidden,
                             unsigned flags, Rng &rng,
                             const nvp_allocator *alloc = nullptr)
    {
        return conditional(dim, context_dim, n_layers, hidden.size(),
                           detail::hidden_ptr(hidden), flags, rng, alloc);
    }
    /* The default conditioner. */
    static Chain conditional(std::size_t dim, std::size_t context_dim,
                             std::size_t n_layers, unsigned flags, Rng &rng,
                             const nvp_allocator *alloc = nullptr)
    {
        return conditional(dim, context_dim, n_layers, 0, nullptr, flags, rng, alloc);
    }
    static Chain adopt(nvp_chain *h) noexcept { return Chain(detail::adopt_tag{}, h); }

    Chain(const Chain &) = delete;
    Chain &operator=(const Chain &) = delete;
    Chain(Chain &&) noexcept = default;
    Chain &operator=(Chain &&) noexcept = default;
    ~Chain() = default;

    nvp_chain *get() const noexcept { return h_.get(); }
    nvp_chain *release() noexcept { return h_.release(); }
    explicit operator bool() const noexcept { return h_.get() != nullptr; }

    std::size_t dim() const noexcept { return nvp_chain_dim(get()); }
    /* Context values per row (0 for an unconditional chain); a chain
     * with context_dim() > 0 is called through the _given calls. */
    std::size_t context_dim() const noexcept { return nvp_chain_context_dim(get()); }
    std::size_t num_layers() const noexcept { return nvp_chain_num_layers(get()); }
    std::size_t num_params() const noexcept { return nvp_chain_num_params(get()); }

    /* The chain's own flat parameter vector (num_params() floats), valid
     * while the chain lives; writing through it changes the model. */
    float *params() noexcept { return nvp_chain_params(get()); }
    const float *params() const noexcept { return nvp_chain_params(get()); }
    /* count must equal num_params(). */
    void get_params(std::size_t count, float *dst) const
    {
        detail::check(nvp_chain_get_params(get(), count, dst), get());
    }
    std::vector<float> get_params() const
    {
        std::vector<float> p(num_params());
        get_params(p.size(), detail::nonnull(p));
        return p;
    }
    /* count must equal num_params(); NVP_ENONFINITE (no change) for NaN
     * or infinite values. */
    void set_params(std::size_t count, const float *src)
    {
        detail::check(nvp_chain_set_params(get(), count, src), get());
    }
    void set_params(const std::vector<float> &p)
    {
        set_params(p.size(), detail::nonnull(p));
    }

    /* Layer k (0-based) of any kind, valid while the chain lives;
     * NVP_EINVAL when k is out of range.  offset (may be nullptr) gets its
     * place in params(). */
    LayerView layer(std::size_t k, std::size_t *offset = nullptr) const
    {
        const nvp_layer *l = nvp_chain_layer(get(), k, offset);
        if (!l)
            detail::fail(NVP_EINVAL, "nvp::Chain::layer",
                         "layer " + std::to_string(k) + " is out of range (" +
                             std::to_string(num_layers()) + " layers)");
        return LayerView(l);
    }
    /* Layer k as an affine coupling; NVP_EINVAL when k is out of range or
     * layer k is of another kind. */
    CouplingView coupling(std::size_t k, std::size_t *offset = nullptr) const
    {
        const nvp_layer *l = nvp_chain_layer(get(), k, offset);
        const nvp_coupling *c = nvp_layer_as_coupling(l);
        if (!c)
            detail::fail(NVP_EINVAL, "nvp::Chain::coupling",
                         l ? "layer " + std::to_string(k) + " is a " +
                                 std::string(nvp_layer_kind(l)) +
                                 ", not an affine coupling"
                           : "layer " + std::to_string(k) + " is out of range (" +
                                 std::to_string(num_layers()) + " layers)");
        return CouplingView(c);
    }
    /* The kind of layer k (see Layer::kind); NVP_EINVAL out of range. */
    std::string_view layer_kind(std::size_t k) const { return layer(k).kind(); }
    /* The kind of every layer, in order. */
    std::vector<std::string_view> layer_kinds() const
    {
        std::vector<std::string_view> kinds(num_layers());
        for (std::size_t k = 0; k < kinds.size(); k++)
            kinds[k] = layer_kind(k);
        return kinds;
    }
    BaseView base() const noexcept { return BaseView(nvp_chain_base(get())); }
    /* nvp_chain_set_base: replaces the base with one of the chain's
     * dimension (the old one is freed).  On success the chain takes base
     * (it is left empty); on failure (NVP_EDIM, NVP_EINVAL) it keeps it. */
    void set_base(Base &&base)
    {
        detail::check(nvp_chain_set_base(get(), base.get()), get());
        base.release();
    }

    /* Data-dependent initialisation (nvp_chain_init_from_data): every
     * actnorm layer standardises, every linear layer whitens the n rows of
     * data as they reach it going from data to base.  n >= 2; on error no
     * parameter changes. */
    void init_from_data(std::size_t n, const float *data)
    {
        detail::check(nvp_chain_init_from_data(get(), n, data), get());
    }
    void init_from_data(const std::vector<float> &data)
    {
        init_from_data(
            detail::rows(data.size(), dim(), "nvp::Chain::init_from_data", "data"),
            data.data());
    }

    /* Draws n points into y (n * dim); log_prob may be nullptr. */
    void sample(Rng &rng, std::size_t n, float *y, float *log_prob) const
    {
        detail::check(nvp_chain_sample(get(), rng.get(), n, y, log_prob), get());
    }
    /* Returns n * dim floats; log_prob, when given, is resized to n. */
    std::vector<float> sample(Rng &rng, std::size_t n,
                              std::vector<float> *log_prob = nullptr) const
    {
        std::vector<float> y(detail::mul(n, dim(), "nvp::Chain::sample"));
        std::vector<float> lp(log_prob ? n : 0);
        sample(rng, n, y.data(), log_prob ? lp.data() : nullptr);
        if (log_prob)
            *log_prob = std::move(lp);
        return y;
    }

    void log_prob(std::size_t n, const float *y, float *lp) const
    {
        detail::check(nvp_chain_log_prob(get(), n, y, lp), get());
    }
    std::vector<float> log_prob(const std::vector<float> &y) const
    {
        const std::size_t n = detail::rows(y.size(), dim(), "nvp::Chain::log_prob", "y");
        std::vector<float> lp(n);
        log_prob(n, y.data(), lp.data());
        return lp;
    }

    /* Base -> data (x and y may alias); logdet may be nullptr. */
    void forward(std::size_t n, const float *x, float *y, float *logdet) const
    {
        detail::check(nvp_chain_forward(get(), n, x, y, logdet), get());
    }
    std::vector<float> forward(const std::vector<float> &x,
                               std::vector<float> *logdet = nullptr) const
    {
        const std::size_t n = detail::rows(x.size(), dim(), "nvp::Chain::forward", "x");
        std::vector<float> y(x.size()), ld(logdet ? n : 0);
        forward(n, x.data(), y.data(), logdet ? ld.data() : nullptr);
        if (logdet)
            *logdet = std::move(ld);
        return y;
    }
    /* Data -> base (y and x may alias); ildj may be nullptr. */
    void inverse(std::size_t n, const float *y, float *x, float *ildj) const
    {
        detail::check(nvp_chain_inverse(get(), n, y, x, ildj), get());
    }
    std::vector<float> inverse(const std::vector<float> &y,
                               std::vector<float> *ildj = nullptr) const
    {
        const std::size_t n = detail::rows(y.size(), dim(), "nvp::Chain::inverse", "y");
        std::vector<float> x(y.size()), il(ildj ? n : 0);
        inverse(n, y.data(), x.data(), ildj ? il.data() : nullptr);
        if (ildj)
            *ildj = std::move(il);
        return x;
    }

    /* stages: (num_layers + 1) blocks of n * dim floats. */
    void forward_trace(std::size_t n, const float *x, float *stages) const
    {
        detail::check(nvp_chain_forward_trace(get(), n, x, stages), get());
    }
    std::vector<float> forward_trace(const std::vector<float> &x) const
    {
        const std::size_t n =
            detail::rows(x.size(), dim(), "nvp::Chain::forward_trace", "x");
        std::vector<float> stages(
            detail::mul(num_layers() + 1, x.size(), "nvp::Chain::forward_trace"));
        forward_trace(n, x.data(), stages.data());
        return stages;
    }

    /* Mean NLL of the n points y (returned); grad (num_params floats) is
     * overwritten with its gradient. */
    float nll_grad(std::size_t n, const float *y, float *grad) const
    {
        float loss = 0.0f;
        detail::check(nvp_chain_nll_grad(get(), n, y, grad, &loss), get());
        return loss;
    }
    /* grad is resized to num_params(). */
    float nll_grad(const std::vector<float> &y, std::vector<float> &grad) const
    {
        const std::size_t n = detail::rows(y.size(), dim(), "nvp::Chain::nll_grad", "y");
        grad.resize(num_params());
        return nll_grad(n, y.data(), grad.data());
    }

    /* One Adam step on a minibatch of `batch` rows drawn from the n_data
     * rows of data; returns the minibatch's mean NLL before the step. */
    float train_step(Adam &opt, Rng &rng, std::size_t n_data, const float *data,
                     std::size_t batch)
    {
        float loss = 0.0f;
        detail::check(nvp_chain_train_step(get(), opt.get(), rng.get(), n_data,
                                           data, batch, &loss),
                      get());
        return loss;
    }
    float train_step(Adam &opt, Rng &rng, const std::vector<float> &data,
                     std::size_t batch)
    {
        return train_step(opt, rng,
                          detail::rows(data.size(), dim(), "nvp::Chain::train_step",
                                       "data"),
                          data.data(), batch);
    }

    /* ------------------------------------------------------------------
     * Conditional densities p(y | c) (nvp_chain_*_given): each call is the
     * one above with a context of n rows of context_dim() floats (row i
     * conditions row i).  The std::vector forms check that the context
     * holds exactly that many floats (NVP_EDIM); an empty context stands
     * for NULL, which a chain with context_dim() == 0 accepts. */
    void init_from_data_given(std::size_t n, const float *data, const float *context)
    {
        detail::check(nvp_chain_init_from_data_given(get(), n, data, context), get());
    }
    void init_from_data_given(const std::vector<float> &data,
                              const std::vector<float> &context)
    {
        const char *where = "nvp::Chain::init_from_data_given";
        const std::size_t n = detail::rows(data.size(), dim(), where, "data");
        init_from_data_given(n, data.data(),
                             detail::context_ptr(context, n, context_dim(), where));
    }

    void log_prob_given(std::size_t n, const float *y, const float *context,
                        float *lp) const
    {
        detail::check(nvp_chain_log_prob_given(get(), n, y, context, lp), get());
    }
    std::vector<float> log_prob_given(const std::vector<float> &y,
                                      const std::vector<float> &context) const
    {
        const char *where = "nvp::Chain::log_prob_given";
        const std::size_t n = detail::rows(y.size(), dim(), where, "y");
        std::vector<float> lp(n);
        log_prob_given(n, y.data(), detail::context_ptr(context, n, context_dim(), where),
                       lp.data());
        return lp;
    }

    /* One draw per context row. */
    void sample_given(Rng &rng, std::size_t n, const float *context, float *y,
                      float *log_prob) const
    {
        detail::check(nvp_chain_sample_given(get(), rng.get(), n, context, y, log_prob),
                      get());
    }
    /* As many draws as context has rows (context_dim() must be above 0);
     * returns them as rows of dim() floats. */
    std::vector<float> sample_given(Rng &rng, const std::vector<float> &context,
                                    std::vector<float> *log_prob = nullptr) const
    {
        const char *where = "nvp::Chain::sample_given";
        const std::size_t cdim = context_dim();
        if (cdim == 0)
            detail::fail(NVP_EINVAL, where,
                         "the chain reads no context: the number of draws is "
                         "not given (use sample)");
        const std::size_t n = detail::rows(context.size(), cdim, where, "context");
        std::vector<float> y(detail::mul(n, dim(), where)), lp(log_prob ? n : 0);
        sample_given(rng, n, context.data(), y.data(), log_prob ? lp.data() : nullptr);
        if (log_prob)
            *log_prob = std::move(lp);
        return y;
    }
    /* n draws for one context (context_dim() floats). */
    void sample_given_one(Rng &rng, std::size_t n, const float *context, float *y,
                          float *log_prob) const
    {
        detail::check(
            nvp_chain_sample_given_one(get(), rng.get(), n, context, y, log_prob),
            get());
    }
    std::vector<float> sample_given_one(Rng &rng, std::size_t n,
                                        const std::vector<float> &context,
                                        std::vector<float> *log_prob = nullptr) const
    {
        const char *where = "nvp::Chain::sample_given_one";
        const float *c = detail::context_ptr(context, 1, context_dim(), where);
        std::vector<float> y(detail::mul(n, dim(), where)), lp(log_prob ? n : 0);
        sample_given_one(rng, n, c, y.data(), log_prob ? lp.data() : nullptr);
        if (log_prob)
            *log_prob = std::move(lp);
        return y;
    }

    void forward_given(std::size_t n, const float *x, const float *context, float *y,
                       float *logdet) const
    {
        detail::check(nvp_chain_forward_given(get(), n, x, context, y, logdet), get());
    }
    std::vector<float> forward_given(const std::vector<float> &x,
                                     const std::vector<float> &context,
                                     std::vector<float> *logdet = nullptr) const
    {
        const char *where = "nvp::Chain::forward_given";
        return detail::map_rows(where, "x", dim(), x, logdet,
                                [&](std::size_t n, const float *in, float *out,
                                    float *ld) {
                                    forward_given(n, in,
                                                  detail::context_ptr(
                                                      context, n, context_dim(), where),
                                                  out, ld);
                                });
    }
    void inverse_given(std::size_t n, const float *y, const float *context, float *x,
                       float *ildj) const
    {
        detail::check(nvp_chain_inverse_given(get(), n, y, context, x, ildj), get());
    }
    std::vector<float> inverse_given(const std::vector<float> &y,
                                     const std::vector<float> &context,
                                     std::vector<float> *ildj = nullptr) const
    {
        const char *where = "nvp::Chain::inverse_given";
        return detail::map_rows(where, "y", dim(), y, ildj,
                                [&](std::size_t n, const float *in, float *out,
                                    float *ld) {
                                    inverse_given(n, in,
                                                  detail::context_ptr(
                                                      context, n, context_dim(), where),
                                                  out, ld);
                                });
    }
    void forward_trace_given(std::size_t n, const float *x, const float *context,
                             float *stages) const
    {
        detail::check(nvp_chain_forward_trace_given(get(), n, x, context, stages),
                      get());
    }
    std::vector<float> forward_trace_given(const std::vector<float> &x,
                                           const std::vector<float> &context) const
    {
        const char *where = "nvp::Chain::forward_trace_given";
        const std::size_t n = detail::rows(x.size(), dim(), where, "x");
        const float *c = detail::context_ptr(context, n, context_dim(), where);
        std::vector<float> stages(detail::mul(num_layers() + 1, x.size(), where));
        forward_trace_given(n, x.data(), c, stages.data());
        return stages;
    }

    /* Mean NLL of the n rows y given their context (returned); grad is
     * overwritten. */
    float nll_grad_given(std::size_t n, const float *y, const float *context,
                         float *grad) const
    {
        float loss = 0.0f;
        detail::check(nvp_chain_nll_grad_given(get(), n, y, context, grad, &loss),
                      get());
        return loss;
    }
    /* grad is resized to num_params(). */
    float nll_grad_given(const std::vector<float> &y, const std::vector<float> &context,
                         std::vector<float> &grad) const
    {
        const char *where = "nvp::Chain::nll_grad_given";
        const std::size_t n = detail::rows(y.size(), dim(), where, "y");
        const float *c = detail::context_ptr(context, n, context_dim(), where);
        grad.resize(num_params());
        return nll_grad_given(n, y.data(), c, detail::nonnull(grad));
    }

    /* One Adam step on a minibatch drawn from the n_data rows of data and
     * of context with the same indices; returns its mean NLL before the
     * step. */
    float train_step_given(Adam &opt, Rng &rng, std::size_t n_data, const float *data,
                           const float *context, std::size_t batch)
    {
        float loss = 0.0f;
        detail::check(nvp_chain_train_step_given(get(), opt.get(), rng.get(), n_data,
                                                 data, context, batch, &loss),
                      get());
        return loss;
    }
    float train_step_given(Adam &opt, Rng &rng, const std::vector<float> &data,
                           const std::vector<float> &context, std::size_t batch)
    {
        const char *where = "nvp::Chain::train_step_given";
        const std::size_t n = detail::rows(data.size(), dim(), where, "data");
        return train_step_given(opt, rng, n, data.data(),
                                detail::context_ptr(context, n, context_dim(), where),
                                batch);
    }

    /* The score d log p(y) / dy of n finite rows into dlp_dy (n * dim);
     * lp (may be nullptr) gets log p(y). */
    void score(std::size_t n, const float *y, float *dlp_dy, float *lp) const
    {
        detail::check(nvp_chain_score(get(), n, y, dlp_dy, lp), get());
    }
    /* Returns d log p / dy; lp, when given, is resized to n and gets log p. */
    std::vector<float> score(const std::vector<float> &y,
                             std::vector<float> *lp = nullptr) const
    {
        const std::size_t n = detail::rows(y.size(), dim(), "nvp::Chain::score", "y");
        std::vector<float> g(y.size()), l(lp ? n : 0);
        score(n, y.data(), g.data(), lp ? l.data() : nullptr);
        if (lp)
            *lp = std::move(l);
        return g;
    }
    /* d log p(y | c) / dy into dlp_dy and / dc into dlp_dc (n *
     * context_dim floats); either may be nullptr, not both. */
    void score_given(std::size_t n, const float *y, const float *context,
                     float *dlp_dy, float *dlp_dc, float *lp) const
    {
        detail::check(nvp_chain_score_given(get(), n, y, context, dlp_dy, dlp_dc, lp),
                      get());
    }
    /* Returns d log p(y | c) / dy; dlp_dc and lp, when given, are resized
     * and receive d log p / dc and log p. */
    std::vector<float> score_given(const std::vector<float> &y,
                                   const std::vector<float> &context,
                                   std::vector<float> *dlp_dc = nullptr,
                                   std::vector<float> *lp = nullptr) const
    {
        const char *where = "nvp::Chain::score_given";
        const std::size_t n = detail::rows(y.size(), dim(), where, "y");
        const float *c = detail::context_ptr(context, n, context_dim(), where);
        std::vector<float> g(y.size()), dc(dlp_dc ? context.size() : 0), l(lp ? n : 0);
        score_given(n, y.data(), c, g.data(), dlp_dc ? detail::nonnull(dc) : nullptr,
                    lp ? l.data() : nullptr);
        if (dlp_dc)
            *dlp_dc = std::move(dc);
        if (lp)
            *lp = std::move(l);
        return g;
    }

    /* ------------------------------------------------------------------
     * Variational inference (docs/variational.md).  forward_backward is
     * the vector-Jacobian product of the forward direction, base to data,
     * with its log-determinant: given dy = dL/dy and dlogdet = dL/dlogdet
     * (nullptr: zero), dx (may be nullptr) gets dL/dx and grad (may be
     * nullptr) is ADDED to, so that several losses sum into one gradient.
     * The forward is recomputed from x. */
    void forward_backward(std::size_t n, const float *x, const float *dy,
                          const float *dlogdet, float *dx, float *grad) const
    {
        detail::check(nvp_chain_forward_backward(get(), n, x, dy, dlogdet, dx, grad),
                      get());
    }
    /* Returns dL/dx.  grad, when given, is added to; an empty vector is
     * first sized to num_params() zeros, otherwise it must hold
     * num_params() floats. */
    std::vector<float> forward_backward(const std::vector<float> &x,
                                        const std::vector<float> &dy,
                                        const std::vector<float> *dlogdet = nullptr,
                                        std::vector<float> *grad = nullptr) const
    {
        return detail::forward_backward_rows(
            "nvp::Chain::forward_backward", "chain", dim(), num_params(), x, dy,
            dlogdet, grad,
            [this](std::size_t n, const float *xx, const float *dyy, const float *dl,
                   float *dxx, float *g) { forward_backward(n, xx, dyy, dl, dxx, g); });
    }
    /* As forward_backward given the context; dcontext (may be nullptr)
     * is OVERWRITTEN with dL/dcontext. */
    void forward_backward_given(std::size_t n, const float *x, const float *context,
                                const float *dy, const float *dlogdet, float *dx,
                                float *dcontext, float *grad) const
    {
        detail::check(nvp_chain_forward_backward_given(get(), n, x, context, dy,
                                                       dlogdet, dx, dcontext, grad),
                      get());
    }
    /* dcontext, when given, is resized to the context's size. */
    std::vector<float> forward_backward_given(const std::vector<float> &x,
                                              const std::vector<float> &context,
                                              const std::vector<float> &dy,
                                              const std::vector<float> *dlogdet = nullptr,
                                              std::vector<float> *grad = nullptr,
                                              std::vector<float> *dcontext = nullptr) const
    {
        const char *where = "nvp::Chain::forward_backward_given";
        std::vector<float> dc;
        std::vector<float> dx = detail::forward_backward_rows(
            where, "chain", dim(), num_params(), x, dy, dlogdet, grad,
            [&](std::size_t n, const float *xx, const float *dyy, const float *dl,
                float *dxx, float *g) {
                const float *c = detail::context_ptr(context, n, context_dim(), where);
                dc.resize(dcontext ? context.size() : 0);
                forward_backward_given(n, xx, c, dyy, dl, dxx,
                                       dcontext ? detail::nonnull(dc) : nullptr, g);
            });
        if (dcontext)
            *dcontext = std::move(dc);
        return dx;
    }

    /* Reverse-KL training towards p~ (known up to its constant): draws
     * batch rows y = f(z), calls the log density once on them, and returns
     * the loss mean(log q(y) - log p~(y)) (the negative ELBO); grad
     * (num_params floats) is OVERWRITTEN with its gradient.  The log
     * density is the C callback with its user pointer, or a callable
     * f(std::size_t n, std::size_t dim, const float *y, float *log_p,
     * float *dlogp_dy) writing log p~ (n floats) and its gradient in y
     * (n * dim); what it throws is rethrown after the call.  A callback's
     * nonzero return is thrown as nvp::Error with that code. */
    float reverse_kl_grad(Rng &rng, std::size_t batch, nvp_log_density_fn log_density,
                          void *user, float *grad) const
    {
        float loss = 0.0f;
        detail::check(nvp_chain_reverse_kl_grad(get(), rng.get(), batch, log_density,
                                                user, grad, &loss),
                      get());
        return loss;
    }
    template <class F>
    float reverse_kl_grad(Rng &rng, std::size_t batch, F &&log_density,
                          float *grad) const
    {
        return reverse_kl_grad_with(rng, batch, nullptr, std::forward<F>(log_density),
                                    grad, false);
    }
    /* grad is resized to num_params(). */
    template <class F>
    float reverse_kl_grad(Rng &rng, std::size_t batch, F &&log_density,
                          std::vector<float> &grad) const
    {
        grad.resize(num_params());
        return reverse_kl_grad(rng, batch, std::forward<F>(log_density),
                               detail::nonnull(grad));
    }
    /* One Adam step on the reverse-KL gradient; returns the batch's loss
     * before the step.  On any error, the callable's exception included,
     * neither the chain nor opt changes. */
    float reverse_kl_step(Adam &opt, Rng &rng, std::size_t batch,
                          nvp_log_density_fn log_density, void *user)
    {
        float loss = 0.0f;
        detail::check(nvp_chain_reverse_kl_step(get(), opt.get(), rng.get(), batch,
                                                log_density, user, &loss),
                      get());
        return loss;
    }
    template <class F>
    float reverse_kl_step(Adam &opt, Rng &rng, std::size_t batch, F &&log_density)
    {
        return reverse_kl_step_with(opt, rng, batch, nullptr,
                                    std::forward<F>(log_density), false);
    }
    /* The same for a chain that reads a context: batch rows of
     * context_dim() floats, row i conditioning draw i (the log density
     * sees only y; capture the context if it needs it). */
    float reverse_kl_grad_given(Rng &rng, std::size_t batch, const float *context,
                                nvp_log_density_fn log_density, void *user,
                                float *grad) const
    {
        float loss = 0.0f;
        detail::check(nvp_chain_reverse_kl_grad_given(get(), rng.get(), batch, context,
                                                      log_density, user, grad, &loss),
                      get());
        return loss;
    }
    template <class F>
    float reverse_kl_grad_given(Rng &rng, std::size_t batch, const float *context,
                                F &&log_density, float *grad) const
    {
        return reverse_kl_grad_with(rng, batch, context, std::forward<F>(log_density),
                                    grad, true);
    }
    /* grad is resized to num_params(). */
    template <class F>
    float reverse_kl_grad_given(Rng &rng, std::size_t batch,
                                const std::vector<float> &context, F &&log_density,
                                std::vector<float> &grad) const
    {
        const float *c = detail::context_ptr(context, batch, context_dim(),
                                              "nvp::Chain::reverse_kl_grad_given");
        grad.resize(num_params());
        return reverse_kl_grad_given(rng, batch, c, std::forward<F>(log_density),
                                     detail::nonnull(grad));
    }
    float reverse_kl_step_given(Adam &opt, Rng &rng, std::size_t batch,
                                const float *context, nvp_log_density_fn log_density,
                                void *user)
    {
        float loss = 0.0f;
        detail::check(nvp_chain_reverse_kl_step_given(get(), opt.get(), rng.get(),
                                                      batch, context, log_density,
                                                      user, &loss),
                      get());
        return loss;
    }
    template <class F>
    float reverse_kl_step_given(Adam &opt, Rng &rng, std::size_t batch,
                                const float *context, F &&log_density)
    {
        return reverse_kl_step_with(opt, rng, batch, context,
                                    std::forward<F>(log_density), true);
    }
    template <class F>
    float reverse_kl_step_given(Adam &opt, Rng &rng, std::size_t batch,
                                const std::vector<float> &context, F &&log_density)
    {
        const float *c = detail::context_ptr(context, batch, context_dim(),
                                              "nvp::Chain::reverse_kl_step_given");
        return reverse_kl_step_given(opt, rng, batch, c, std::forward<F>(log_density));
    }

    void set_log_scale_clamp(float bound)
    {
        detail::check(nvp_chain_set_log_scale_clamp(get(), bound), get());
    }
    /* 0 selects the number of online CPUs, 1 the calling thread only. */
    void set_threads(std::size_t n_threads)
    {
        detail::check(nvp_chain_set_threads(get(), n_threads), get());
    }
    std::size_t threads() const noexcept { return nvp_chain_threads(get()); }

    /* Column names saved with the model (nvp_chain_set_column_names): one
     * per dimension; an empty vector removes them. */
    void set_column_names(const std::vector<std::string> &names)
    {
        if (names.empty()) {
            detail::check(nvp_chain_set_column_names(get(), 0, nullptr),
                          get());
            return;
        }
        std::vector<const char *> ptrs;
        ptrs.reserve(names.size());
        for (const std::string &n : names) {
            if (n.find('\0') != std::string::npos)
                detail::fail(NVP_EINVAL, "nvp::Chain::set_column_names",
                             "a name holds a NUL character");
            ptrs.push_back(n.c_str());
        }
        detail::check(
            nvp_chain_set_column_names(get(), ptrs.size(), ptrs.data()),
            get());
    }
    /* The names, or an empty vector when the chain has none. */
    std::vector<std::string> column_names() const
    {
        std::vector<std::string> out;
        if (!nvp_chain_column_name(get(), 0))
            return out;
        for (std::size_t j = 0; j < dim(); j++)
            out.emplace_back(nvp_chain_column_name(get(), j));
        return out;
    }
    /* The kernels of every batched call on the chain, training included
     * (the optimizer's update follows the optimizer's own setting). */
    void set_kernels(Kernels k)
    {
        detail::check(nvp_chain_set_kernels(get(), detail::from_kernels(k)), get());
    }
    Kernels kernels() const noexcept { return detail::to_kernels(nvp_chain_kernels(get())); }
    /* The precision of the conditioners' large matrix products (Bf16:
     * bfloat16 operands, float sums; not saved with the model). */
    void set_precision(Precision p)
    {
        detail::check(nvp_chain_set_precision(get(), static_cast<int>(p)), get());
    }
    Precision precision() const noexcept
    {
        return static_cast<Precision>(nvp_chain_precision(get()));
    }

    /* Saving: the scaler (may be nullptr) is stored along. */
    void save(const std::string &path, const Scaler *scaler = nullptr) const
    {
        detail::check(nvp_chain_save_file(get(), scaler ? scaler->get() : nullptr,
                                          path.c_str()),
                      get());
    }
    std::size_t saved_size(const Scaler *scaler = nullptr) const
    {
        std::size_t size = 0;
        detail::check(nvp_chain_save_buffer(get(), scaler ? scaler->get() : nullptr, 0, nullptr, &size),
                      get());
        return size;
    }
    /* Into buf (cap bytes); returns the bytes written. */
    std::size_t save_buffer(std::size_t cap, void *buf,
                            const Scaler *scaler = nullptr) const
    {
        std::size_t size = 0;
        detail::check(nvp_chain_save_buffer(get(), scaler ? scaler->get() : nullptr, cap, buf, &size),
                      get());
        return size;
    }
    Bytes save_buffer(const Scaler *scaler = nullptr) const
    {
        Bytes b(saved_size(scaler));
        b.resize(save_buffer(b.size(), b.data(), scaler));
        return b;
    }

    /* Loading (any scaler in the data is ignored). */
    static Chain load(const std::string &path, const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_load_file(&h, nullptr, path.c_str(), alloc));
        return adopt(h);
    }
    /* scaler receives the saved scaler, or is reset when the data has none. */
    static Chain load(const std::string &path, std::optional<Scaler> &scaler,
                      const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        nvp_scaler *s = nullptr;
        detail::check(nvp_chain_load_file(&h, &s, path.c_str(), alloc));
        return finish_load(h, s, scaler);
    }
    static Chain load_buffer(std::size_t size, const void *data,
                             const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        detail::check(nvp_chain_load_buffer(&h, nullptr, size, data, alloc));
        return adopt(h);
    }
    static Chain load_buffer(std::size_t size, const void *data,
                             std::optional<Scaler> &scaler,
                             const nvp_allocator *alloc = nullptr)
    {
        nvp_chain *h = nullptr;
        nvp_scaler *s = nullptr;
        detail::check(nvp_chain_load_buffer(&h, &s, size, data, alloc));
        return finish_load(h, s, scaler);
    }
    static Chain load(const Bytes &buf, const nvp_allocator *alloc = nullptr)
    {
        return load_buffer(buf.size(), buf.data(), alloc);
    }
    static Chain load(const Bytes &buf, std::optional<Scaler> &scaler,
                      const nvp_allocator *alloc = nullptr)
    {
        return load_buffer(buf.size(), buf.data(), scaler, alloc);
    }

private:
    Chain(detail::adopt_tag, nvp_chain *h) noexcept : h_(h) {}
    /* The callable forms: the plain C call (given == false) or the _given
     * one, through a LogDensityAdapter. */
    template <class F>
    float reverse_kl_grad_with(Rng &rng, std::size_t batch, const float *context,
                               F &&log_density, float *grad, bool given) const
    {
        using Fn = std::remove_reference_t<F>;
        static_assert(detail::is_log_density_v<Fn>,
                      "the log density must be callable as f(std::size_t n, "
                      "std::size_t dim, const float *y, float *log_p, "
                      "float *dlogp_dy)");
        detail::LogDensityAdapter<Fn> a(log_density);
        float loss = 0.0f;
        const int rc =
            given ? nvp_chain_reverse_kl_grad_given(get(), rng.get(), batch, context,
                                                    &a.call, a.user(), grad, &loss)
                  : nvp_chain_reverse_kl_grad(get(), rng.get(), batch, &a.call,
                                              a.user(), grad, &loss);
        a.check(rc, get());
        return loss;
    }
    template <class F>
    float reverse_kl_step_with(Adam &opt, Rng &rng, std::size_t batch,
                               const float *context, F &&log_density, bool given)
    {
        using Fn = std::remove_reference_t<F>;
        static_assert(detail::is_log_density_v<Fn>,
                      "the log density must be callable as f(std::size_t n, "
                      "std::size_t dim, const float *y, float *log_p, "
                      "float *dlogp_dy)");
        detail::LogDensityAdapter<Fn> a(log_density);
        float loss = 0.0f;
        const int rc =
            given ? nvp_chain_reverse_kl_step_given(get(), opt.get(), rng.get(), batch,
                                                    context, &a.call, a.user(), &loss)
                  : nvp_chain_reverse_kl_step(get(), opt.get(), rng.get(), batch,
                                              &a.call, a.user(), &loss);
        a.check(rc, get());
        return loss;
    }
    static Chain finish_load(nvp_chain *h, nvp_scaler *s,
                             std::optional<Scaler> &scaler) noexcept
    {
        Chain c = adopt(h);
        if (s)
            scaler.emplace(Scaler::adopt(s));
        else
            scaler.reset();
        return c;
    }
    detail::Owner<nvp_chain> h_;
};

} // namespace nvp

#endif /* NVPFLOW_HPP */
