/* SPDX-License-Identifier: MIT */
// test_cpp.cpp - tests of the header-only C++ wrapper include/nvpflow.hpp.
//
// Plain C++ (no framework): CHECK prints each failure and main returns the
// number of failures (capped), so 0 means every check passed.  The file is
// compiled twice by `make test-cpp`: once with NVP_TEST_SECOND_TU defined,
// giving a second translation unit that also includes nvpflow.hpp (proving
// the header links from several TUs), and once as the test program.
//
//   usage: test_cpp [scratch-dir]     (model files are written there)
#include <nvpflow.hpp>

#include <cstddef>
#include <cstdint>

// ------------------------------------------------- second translation unit
// The functions the main TU calls to show both TUs share one definition of
// every inline entity and compute the same results.
const std::size_t *second_tu_hidden_ptr();
unsigned second_tu_version();
float second_tu_log_prob_sum(std::uint64_t seed);

#ifdef NVP_TEST_SECOND_TU

const std::size_t *second_tu_hidden_ptr() { return nvp::detail::hidden_ptr({}); }
unsigned second_tu_version() { return nvp::version_number(); }
float second_tu_log_prob_sum(std::uint64_t seed)
{
    nvp::Rng rng(seed);
    nvp::Chain chain = nvp::Chain::alternating(2, 2, {8}, 0, rng);
    float sum = 0.0f;
    for (float v : chain.log_prob(nvp::two_moons(rng, 16, 0.1f)))
        sum += v;
    return sum;
}

#else // ------------------------------------------------- the test program

#include <atomic>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        ++g_checks;                                                        \
        if (!(cond)) {                                                     \
            ++g_failures;                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,    \
                         __LINE__, #cond);                                 \
        }                                                                  \
    } while (0)

// Runs f, which must throw nvp::Error with `code`, a non-empty message and
// what() == "<nvp_strerror(code)>: <message>".  Returns the message.
template <class F>
static std::string expect_error(int code, F &&f, const char *expr, int line)
{
    ++g_checks;
    try {
        f();
    } catch (const nvp::Error &e) {
        const std::string msg = e.message();
        const std::string what = e.what();
        const bool ok = e.code() == code && !msg.empty() &&
                        what == std::string(nvp_strerror(code)) + ": " + msg;
        if (!ok) {
            ++g_failures;
            std::fprintf(stderr,
                         "%s:%d: %s threw code %d (want %d), what() \"%s\", "
                         "message \"%s\"\n",
                         __FILE__, line, expr, e.code(), code, what.c_str(),
                         msg.c_str());
        }
        return msg;
    } catch (const std::exception &e) {
        ++g_failures;
        std::fprintf(stderr, "%s:%d: %s threw a non-nvp exception: %s\n",
                     __FILE__, line, expr, e.what());
        return std::string();
    }
    ++g_failures;
    std::fprintf(stderr, "%s:%d: %s did not throw (want code %d)\n", __FILE__,
                 line, expr, code);
    return std::string();
}
#define EXPECT_ERROR(code, expr) expect_error((code), [&]() { (void)(expr); }, #expr, __LINE__)

static bool same_bits(const float *a, const float *b, std::size_t n)
{
    // memcmp must not see the NULL data() of an empty vector (UBSan).
    return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}
static bool same_bits(const std::vector<float> &a, const std::vector<float> &b)
{
    return a.size() == b.size() && same_bits(a.data(), b.data(), a.size());
}

// ------------------------------------------------------ counting allocator
struct Counter {
    std::atomic<long> live{0};
    std::atomic<long> total{0};
};

static void *count_alloc(void *user, std::size_t size)
{
    void *p = std::malloc(size);
    if (p) {
        static_cast<Counter *>(user)->live++;
        static_cast<Counter *>(user)->total++;
    }
    return p;
}
static void *count_realloc(void *user, void *ptr, std::size_t size)
{
    void *p = std::realloc(ptr, size);
    if (p && !ptr) {
        static_cast<Counter *>(user)->live++;
        static_cast<Counter *>(user)->total++;
    }
    return p;
}
static void count_free(void *user, void *ptr)
{
    if (ptr)
        static_cast<Counter *>(user)->live--;
    std::free(ptr);
}
static nvp_allocator counting(Counter &c)
{
    nvp_allocator a;
    a.version = NVP_ALLOCATOR_VERSION;
    a.user = &c;
    a.alloc_fn = count_alloc;
    a.realloc_fn = count_realloc;
    a.free_fn = count_free;
    return a;
}

static std::string g_scratch = ".";
static std::string scratch(const char *name) { return g_scratch + "/" + name; }

// ------------------------------------------------------------------ tests
template <class T>
static void check_move_only()
{
    static_assert(!std::is_copy_constructible<T>::value, "copyable");
    static_assert(!std::is_copy_assignable<T>::value, "copy-assignable");
    static_assert(std::is_nothrow_move_constructible<T>::value, "move may throw");
    static_assert(std::is_nothrow_move_assignable<T>::value, "move= may throw");
    static_assert(std::is_nothrow_destructible<T>::value, "dtor may throw");
}

static void test_types()
{
    check_move_only<nvp::Rng>();
    check_move_only<nvp::Base>();
    check_move_only<nvp::Coupling>();
    check_move_only<nvp::Layer>();
    check_move_only<nvp::Chain>();
    check_move_only<nvp::Adam>();
    check_move_only<nvp::Scaler>();
    static_assert(std::is_base_of<std::runtime_error, nvp::Error>::value, "Error");
    static_assert(std::is_nothrow_copy_constructible<nvp::Error>::value, "Error copy");
    static_assert(std::is_same<decltype(std::declval<nvp::Chain &>().get()),
                               nvp_chain *>::value,
                  "get()");
    CHECK(true);
}

static void test_version()
{
    CHECK(nvp::version_number() == NVP_VERSION_NUMBER);
    CHECK(nvp::header_version_number == NVP_VERSION_NUMBER);
    CHECK(std::string(nvp::version_string()) == NVP_VERSION_STRING);
    CHECK(std::string(nvp::header_version_string) == NVP_VERSION_STRING);
    CHECK(nvp::version_matches());
    CHECK(std::string(nvp::strerror(NVP_EFORMAT)) == nvp_strerror(NVP_EFORMAT));
}

static void test_multiple_tus()
{
    // An inline function's static local has one address program-wide.
    CHECK(second_tu_hidden_ptr() == nvp::detail::hidden_ptr({}));
    CHECK(second_tu_version() == nvp::version_number());
    nvp::Rng rng(99);
    nvp::Chain chain = nvp::Chain::alternating(2, 2, {8}, 0, rng);
    float sum = 0.0f;
    for (float v : chain.log_prob(nvp::two_moons(rng, 16, 0.1f)))
        sum += v;
    const float other = second_tu_log_prob_sum(99);
    CHECK(std::memcmp(&sum, &other, sizeof sum) == 0);
}

static void test_raii()
{
    Counter c;
    const nvp_allocator a = counting(c);
    {
        nvp::Rng rng(1, &a);
        nvp::Base base = nvp::Base::normal(2, &a);
        nvp::Coupling layer = nvp::Coupling::half(2, false, {8}, 0, rng, &a);
        nvp::Scaler scaler(2, &a);
        nvp::Chain chain = nvp::Chain::alternating(2, 2, {8}, 0, rng, &a);
        nvp::Adam adam(chain.num_params(), &a);
        (void)chain.train_step(adam, rng, nvp::two_moons(rng, 64, 0.1f), 16);
        CHECK(c.live > 0);
    }
    CHECK(c.live == 0);

    // Chain::create takes the base and layers on success only.
    {
        nvp::Rng rng(2, &a);
        nvp::Base base = nvp::Base::normal(2, &a);
        std::vector<nvp::Coupling> layers;
        layers.push_back(nvp::Coupling::half(4, false, {8}, 0, rng, &a));
        EXPECT_ERROR(NVP_EDIM, nvp::Chain::create(std::move(base), std::move(layers), &a));
        CHECK(base && layers.size() == 1 && layers[0]);
        layers.clear();
        layers.push_back(nvp::Coupling::half(2, false, {8}, 0, rng, &a));
        layers.push_back(
            nvp::Coupling::create(2, std::vector<unsigned char>{0, 1}, {8}, 0, rng, &a));
        nvp::Chain chain = nvp::Chain::create(std::move(base), std::move(layers), &a);
        CHECK(!base && layers.empty());
        CHECK(chain.num_layers() == 2 && chain.dim() == 2);
    }
    CHECK(c.live == 0);

    // A failing constructor leaks nothing; a bad allocator is refused.
    {
        nvp_allocator bad = a;
        bad.version = 0;
        EXPECT_ERROR(NVP_EINVAL, nvp::Rng(1, &bad));
        nvp::Rng rng(3, &a);
        EXPECT_ERROR(NVP_EINVAL, nvp::Chain::alternating(1, 2, {8}, 0, rng, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Scaler(0, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::normal(0, &a));
    }
    CHECK(c.live == 0);

    // release() hands the handle over; adopt() takes one.
    {
        nvp::Scaler s(3, &a);
        nvp_scaler *raw = s.release();
        CHECK(!s && raw != nullptr && s.get() == nullptr);
        CHECK(nvp_scaler_dim(raw) == 3);
        nvp::Scaler back = nvp::Scaler::adopt(raw);
        CHECK(back.get() == raw && back.dim() == 3);
        nvp_rng *r = nullptr;
        CHECK(nvp_rng_create(&r, 5, &a) == NVP_OK);
        nvp::Rng owned = nvp::Rng::adopt(r);
        CHECK(owned.get() == r);
    }
    CHECK(c.live == 0);

    // Loaded handles are owned too (chain + scaler, adam + rng).
    {
        nvp::Rng rng(4, &a);
        nvp::Chain chain = nvp::Chain::alternating(2, 2, {8}, 0, rng, &a);
        nvp::Scaler scaler(2, &a);
        nvp::Adam adam(chain.num_params(), &a);
        const nvp::Bytes model = chain.save_buffer(&scaler);
        const nvp::Bytes state = adam.save_buffer(&rng);
        std::optional<nvp::Scaler> s;
        std::optional<nvp::Rng> r;
        nvp::Chain c2 = nvp::Chain::load(model, s, &a);
        nvp::Adam a2 = nvp::Adam::load(state, r, &a);
        CHECK(s && r && c2 && a2);
    }
    CHECK(c.live == 0);
    CHECK(c.total > 0);
}

static void test_moves()
{
    Counter c;
    const nvp_allocator a = counting(c);
    {
        nvp::Rng r1(7, &a), ref(7);
        (void)r1.uniform(3);
        (void)ref.uniform(3);
        nvp::Rng r2 = std::move(r1);
        CHECK(!r1 && r2);
        CHECK(same_bits(r2.normal(5), ref.normal(5))); // the stream continues
        EXPECT_ERROR(NVP_EINVAL, r1.uniform(1));      // moved-from: NULL handle
        r1 = std::move(r2);
        CHECK(r1 && !r2);
        CHECK(same_bits(r1.uniform(4), ref.uniform(4)));

        // Move assignment frees the target's old handle.
        nvp::Scaler s1(2, &a);
        const long one = c.live;
        nvp::Scaler s2(5, &a);
        const long per_scaler = c.live - one;
        CHECK(per_scaler > 0);
        s1 = std::move(s2);
        CHECK(c.live == one && s1.dim() == 5 && !s2 && s2.dim() == 0);
        nvp::Scaler &alias = s1;
        s1 = std::move(alias); // self-move keeps the handle
        CHECK(s1 && s1.dim() == 5);

        // A moved chain keeps its parameter storage; the source is empty.
        nvp::Chain ch = nvp::Chain::alternating(2, 3, {8}, 0, r1, &a);
        const float *p = ch.params();
        const std::size_t np = ch.num_params();
        nvp::Chain ch2(std::move(ch));
        CHECK(ch2.params() == p && ch2.num_params() == np);
        CHECK(!ch && ch.params() == nullptr && ch.dim() == 0 && ch.num_params() == 0);
        EXPECT_ERROR(NVP_EINVAL, ch.log_prob(std::vector<float>{0.0f, 0.0f}));
        EXPECT_ERROR(NVP_EINVAL, ch.sample(r1, 4));

        // Containers move (never copy) their elements.
        std::vector<nvp::Chain> chains;
        for (int i = 0; i < 5; i++)
            chains.push_back(nvp::Chain::alternating(2, 2, {4}, 0, r1, &a));
        chains.push_back(std::move(ch2));
        CHECK(chains.back().params() == p);
        std::optional<nvp::Adam> opt;
        opt.emplace(np, &a);
        CHECK(opt->num_params() == np);
        nvp::Adam adam = std::move(*opt);
        opt.reset();
        CHECK(adam.num_params() == np);
    }
    CHECK(c.live == 0);
}

static void test_errors()
{
    nvp::Rng rng(11);
    nvp::Chain chain = nvp::Chain::alternating(2, 4, {16, 16}, 0, rng);
    const std::vector<float> data = nvp::two_moons(rng, 256, 0.1f);
    nvp::Adam adam(chain.num_params());

    // Wrong dimensions: caught by the wrapper (not whole rows) ...
    EXPECT_ERROR(NVP_EDIM, chain.log_prob(std::vector<float>{1.0f, 2.0f, 3.0f}));
    EXPECT_ERROR(NVP_EDIM, chain.forward(std::vector<float>(5)));
    EXPECT_ERROR(NVP_EDIM, chain.train_step(adam, rng, std::vector<float>(7), 4));
    EXPECT_ERROR(NVP_EDIM, nvp::Coupling::create(2, std::vector<unsigned char>{0, 1, 1},
                                                 {8}, 0, rng));
    std::vector<float> three(3), buf(3);
    EXPECT_ERROR(NVP_EDIM, adam.step(three, std::vector<float>(4)));
    // ... and by the library, whose message comes through.
    std::string msg = EXPECT_ERROR(NVP_EDIM, chain.set_params(std::vector<float>(3)));
    CHECK(msg == nvp_chain_errmsg(chain.get()));
    nvp::Adam small(10);
    msg = EXPECT_ERROR(NVP_EDIM, chain.train_step(small, rng, data, 32));
    CHECK(msg.find("optimizer") != std::string::npos);
    nvp::Scaler scaler3(3);
    EXPECT_ERROR(NVP_EDIM, chain.save_buffer(&scaler3));
    EXPECT_ERROR(NVP_EDIM, chain.get_params(buf.size(), buf.data()));
    EXPECT_ERROR(NVP_EDIM, adam.step(three, buf));

    // The parameter average: off until set, restarted by set_average.
    EXPECT_ERROR(NVP_EINVAL, adam.average());
    EXPECT_ERROR(NVP_EDIM, adam.set_average(0.9f, three));
    const std::vector<float> start = chain.get_params();
    adam.set_average(0.9f, start);
    CHECK(adam.average_decay() == 0.9f && adam.average() == start);
    EXPECT_ERROR(NVP_EINVAL, adam.set_average(1.0f, start));
    CHECK(adam.average_decay() == 0.9f);
    adam.set_average(0.0f, 0, nullptr);
    CHECK(adam.average_decay() == 0.0f);

    // Gradient-norm clipping: off until set; a bad limit changes nothing;
    // a step over the limit reports the unclipped norm.
    nvp::Adam clipper(4);
    CHECK(clipper.clip_norm() == 0.0f && clipper.last_grad_norm() == 0.0f);
    clipper.set_clip_norm(1.0f);
    EXPECT_ERROR(NVP_EINVAL, clipper.set_clip_norm(-1.0f));
    CHECK(clipper.clip_norm() == 1.0f);
    std::vector<float> p4(4, 0.0f);
    clipper.step(p4, std::vector<float>{3.0f, 4.0f, 0.0f, 0.0f});
    CHECK(clipper.last_grad_norm() == 5.0f);
    clipper.set_clip_norm(0.0f);
    CHECK(clipper.clip_norm() == 0.0f);

    // Invalid arguments.
    msg = EXPECT_ERROR(NVP_EINVAL, adam.set_lr(-1.0f));
    CHECK(adam.lr() == 1e-3f);
    CHECK(msg == nvp_adam_errmsg(adam.get()));
    EXPECT_ERROR(NVP_EINVAL, adam.set_betas(1.0f, 0.5f));
    EXPECT_ERROR(NVP_EINVAL, rng.index(4, 0));
    EXPECT_ERROR(NVP_EINVAL, chain.sample(rng, 0));
    EXPECT_ERROR(NVP_EINVAL, chain.set_log_scale_clamp(-1.0f));
    EXPECT_ERROR(NVP_EINVAL, chain.layer(4));
    EXPECT_ERROR(NVP_EINVAL, nvp::two_moons(rng, 10, -1.0f));
    nvp::Scaler scaler(2);
    EXPECT_ERROR(NVP_EINVAL, scaler.set_mean_sd({0.0f, 0.0f}, {1.0f, 0.0f}));
    EXPECT_ERROR(NVP_EDIM, scaler.set_mean_sd({0.0f, 0.0f}, {1.0f}));

    // Non-finite data: train_step refuses and changes nothing.
    const std::vector<float> before = chain.get_params();
    std::vector<float> bad = data;
    for (std::size_t i = 0; i < bad.size(); i += 2)
        bad[i] = std::numeric_limits<float>::quiet_NaN();
    msg = EXPECT_ERROR(NVP_ENONFINITE, chain.train_step(adam, rng, bad, 32));
    CHECK(msg == nvp_chain_errmsg(chain.get()));
    CHECK(same_bits(before, chain.get_params()));
    CHECK(adam.steps() == 0);
    std::vector<float> grad;
    bad[0] = std::numeric_limits<float>::infinity();
    EXPECT_ERROR(NVP_ENONFINITE, chain.nll_grad(bad, grad));
    EXPECT_ERROR(NVP_ENONFINITE, scaler.fit(bad));
    std::vector<float> nan_params = before;
    nan_params[3] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_ERROR(NVP_ENONFINITE, chain.set_params(nan_params));
    CHECK(same_bits(before, chain.get_params()));
    // and the chain still trains afterwards
    const float loss = chain.train_step(adam, rng, data, 32);
    CHECK(std::isfinite(loss) && adam.steps() == 1);

    // Corrupt, truncated and garbage buffers.
    nvp::Bytes bytes = chain.save_buffer();
    CHECK(bytes.size() == chain.saved_size());
    nvp::Bytes corrupt = bytes;
    corrupt[corrupt.size() / 2] ^= 0x5a;
    msg = EXPECT_ERROR(NVP_EFORMAT, nvp::Chain::load(corrupt));
    CHECK(msg == nvp_errmsg());
    nvp::Bytes truncated(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 3));
    EXPECT_ERROR(NVP_EFORMAT, nvp::Chain::load(truncated));
    EXPECT_ERROR(NVP_EFORMAT, nvp::Chain::load(nvp::Bytes(64, 0)));
    std::optional<nvp::Scaler> got(nvp::Scaler(2));
    EXPECT_ERROR(NVP_EFORMAT, nvp::Chain::load(corrupt, got));
    CHECK(got.has_value()); // untouched on failure
    nvp::Bytes state = adam.save_buffer(&rng);
    state[state.size() - 5] ^= 0x01;
    EXPECT_ERROR(NVP_EFORMAT, nvp::Adam::load(state));
    EXPECT_ERROR(NVP_EIO, nvp::Chain::load(scratch("no-such-dir/no-such-file.nvp")));
    EXPECT_ERROR(NVP_EIO, chain.save(scratch("no-such-dir/x.nvp")));
    // a buffer that is too small
    std::vector<unsigned char> tiny(8);
    EXPECT_ERROR(NVP_EBUFSIZE, chain.save_buffer(tiny.size(), tiny.data()));

    // Error copies keep code and message.
    try {
        chain.set_params(std::vector<float>(3));
        CHECK(false);
    } catch (const nvp::Error &e) {
        nvp::Error copy = e;
        CHECK(copy.code() == NVP_EDIM && std::string(copy.message()) == e.message());
        CHECK(std::string(copy.what()) == e.what());
    }
    // nvp::Error is a std::runtime_error.
    bool caught = false;
    try {
        (void)chain.layer(100);
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()).rfind("invalid argument: ", 0) == 0;
    }
    CHECK(caught);
}

// The wrapper gives bitwise the results of the C API.
static void test_equals_c()
{
    const std::uint64_t seed = 123;
    const std::size_t hidden[] = {16, 16};
    nvp_rng *crng = nullptr;
    nvp_chain *cch = nullptr;
    nvp_adam *cadam = nullptr;
    nvp_scaler *cscal = nullptr;
    CHECK(nvp_rng_create(&crng, seed, nullptr) == NVP_OK);
    CHECK(nvp_chain_create_alternating(&cch, 2, 4, 2, hidden, 0, crng, nullptr) ==
          NVP_OK);
    nvp::Rng rng(seed);
    nvp::Chain chain = nvp::Chain::alternating(2, 4, {16, 16}, 0, rng);
    const std::size_t np = chain.num_params();
    CHECK(np == nvp_chain_num_params(cch));
    CHECK(same_bits(chain.params(), nvp_chain_params(cch), np));

    // Data and standardisation.
    const std::size_t n = 200;
    std::vector<float> cdata(2 * n);
    std::vector<int> clabels(n), labels;
    CHECK(nvp_two_moons(crng, n, 0.1f, cdata.data(), clabels.data()) == NVP_OK);
    std::vector<float> data = nvp::two_moons(rng, n, 0.1f, &labels);
    CHECK(same_bits(data, cdata) && labels == clabels);
    CHECK(nvp_scaler_create(&cscal, 2, nullptr) == NVP_OK);
    CHECK(nvp_scaler_fit(cscal, n, cdata.data()) == NVP_OK);
    CHECK(nvp_scaler_transform(cscal, n, cdata.data(), cdata.data()) == NVP_OK);
    nvp::Scaler scaler(2);
    scaler.fit(data);
    data = scaler.transform(data);
    CHECK(same_bits(data, cdata));
    CHECK(scaler.log_det() == nvp_scaler_log_det(cscal));
    std::vector<float> cmean(2), csd(2);
    CHECK(nvp_scaler_get(cscal, 2, cmean.data(), csd.data()) == NVP_OK);
    CHECK(same_bits(scaler.mean(), cmean) && same_bits(scaler.sd(), csd));
    std::vector<float> back(2 * n);
    CHECK(nvp_scaler_inverse_transform(cscal, n, cdata.data(), back.data()) == NVP_OK);
    CHECK(same_bits(scaler.inverse_transform(data), back));

    // Evaluation.
    std::vector<float> clp(n), lp = chain.log_prob(data);
    CHECK(nvp_chain_log_prob(cch, n, cdata.data(), clp.data()) == NVP_OK);
    CHECK(same_bits(lp, clp));
    std::vector<float> cx(2 * n), cildj(n), ildj;
    CHECK(nvp_chain_inverse(cch, n, cdata.data(), cx.data(), cildj.data()) == NVP_OK);
    std::vector<float> x = chain.inverse(data, &ildj);
    CHECK(same_bits(x, cx) && same_bits(ildj, cildj));
    std::vector<float> cy(2 * n), cld(n), ld;
    CHECK(nvp_chain_forward(cch, n, cx.data(), cy.data(), cld.data()) == NVP_OK);
    std::vector<float> y = chain.forward(x, &ld);
    CHECK(same_bits(y, cy) && same_bits(ld, cld));
    std::vector<float> cst(5 * 2 * n);
    CHECK(nvp_chain_forward_trace(cch, n, cx.data(), cst.data()) == NVP_OK);
    CHECK(same_bits(chain.forward_trace(x), cst));
    std::vector<float> cgrad(np), grad;
    float closs = 0.0f;
    CHECK(nvp_chain_nll_grad(cch, n, cdata.data(), cgrad.data(), &closs) == NVP_OK);
    const float loss = chain.nll_grad(data, grad);
    CHECK(std::memcmp(&loss, &closs, sizeof loss) == 0 && same_bits(grad, cgrad));
    std::vector<float> cs(2 * 50), cslp(50), slp;
    CHECK(nvp_chain_sample(cch, crng, 50, cs.data(), cslp.data()) == NVP_OK);
    CHECK(same_bits(chain.sample(rng, 50, &slp), cs) && same_bits(slp, cslp));

    // Views of the layers and the base.
    for (std::size_t k = 0; k < chain.num_layers(); k++) {
        std::size_t off = 0, coff = 0;
        nvp::CouplingView l = chain.coupling(k, &off);
        CHECK(l.get() == nvp_layer_as_coupling(nvp_chain_layer(chain.get(), k, nullptr)));
        const nvp_coupling *cl = nvp_layer_as_coupling(nvp_chain_layer(cch, k, &coff));
        CHECK(off == coff && l.num_params() == nvp_coupling_num_params(cl));
        CHECK(same_bits(l.get_params().data(), chain.params() + off, l.num_params()));
        std::vector<unsigned char> cmask(2);
        CHECK(nvp_coupling_get_mask(cl, 2, cmask.data()) == NVP_OK);
        CHECK(l.mask() == cmask);
    }
    std::vector<float> cb(2 * 8);
    CHECK(nvp_base_sample(nvp_chain_base(cch), crng, 8, cb.data()) == NVP_OK);
    CHECK(chain.base().dim() == 2 && same_bits(chain.base().sample(rng, 8), cb));
    std::vector<float> cblp(8), cbg(16);
    CHECK(nvp_base_log_prob(nvp_chain_base(cch), 8, cb.data(), cblp.data()) == NVP_OK);
    CHECK(nvp_base_log_prob_grad(nvp_chain_base(cch), 8, cb.data(), cbg.data()) ==
          NVP_OK);
    CHECK(same_bits(chain.base().log_prob(cb), cblp));
    CHECK(same_bits(chain.base().log_prob_grad(cb), cbg));

    // Training: same losses and parameters step for step.
    CHECK(nvp_adam_create(&cadam, np, nullptr) == NVP_OK);
    CHECK(nvp_adam_set_lr(cadam, 3e-3f) == NVP_OK);
    nvp::Adam adam(np);
    adam.set_lr(3e-3f);
    bool same_losses = true;
    for (int step = 0; step < 25; step++) {
        float cl = 0.0f;
        CHECK(nvp_chain_train_step(cch, cadam, crng, n, cdata.data(), 32, &cl) ==
              NVP_OK);
        const float l = chain.train_step(adam, rng, data, 32);
        same_losses = same_losses && std::memcmp(&l, &cl, sizeof l) == 0;
    }
    CHECK(same_losses);
    CHECK(adam.steps() == nvp_adam_num_steps(cadam) && adam.steps() == 25);
    CHECK(same_bits(chain.params(), nvp_chain_params(cch), np));

    // A manual Adam step on the gradient.
    CHECK(nvp_chain_nll_grad(cch, n, cdata.data(), cgrad.data(), nullptr) == NVP_OK);
    CHECK(nvp_adam_step(cadam, np, nvp_chain_params(cch), cgrad.data()) == NVP_OK);
    (void)chain.nll_grad(data, grad);
    adam.step(grad.size(), chain.params(), grad.data());
    CHECK(same_bits(chain.params(), nvp_chain_params(cch), np));

    // Threads and the clamp change nothing in the results.
    chain.set_threads(1);
    CHECK(chain.threads() == 1);
    CHECK(same_bits(chain.log_prob(data), [&] {
        std::vector<float> v(n);
        (void)nvp_chain_log_prob(cch, n, cdata.data(), v.data());
        return v;
    }()));
    chain.set_log_scale_clamp(2.5f);
    CHECK(nvp_chain_set_log_scale_clamp(cch, 2.5f) == NVP_OK);
    CHECK(chain.coupling(0).log_scale_clamp() == 2.5f);

    // Saved bytes are identical.
    std::size_t csize = 0;
    CHECK(nvp_chain_save_buffer(cch, cscal, 0, nullptr, &csize) == NVP_OK);
    nvp::Bytes cbytes(csize);
    CHECK(nvp_chain_save_buffer(cch, cscal, csize, cbytes.data(), &csize) == NVP_OK);
    CHECK(chain.save_buffer(&scaler) == cbytes);
    CHECK(nvp_adam_save_buffer(cadam, crng, 0, nullptr, &csize) == NVP_OK);
    nvp::Bytes cstate(csize);
    CHECK(nvp_adam_save_buffer(cadam, crng, csize, cstate.data(), &csize) == NVP_OK);
    CHECK(adam.save_buffer(&rng) == cstate);

    // A stand-alone layer and base.
    nvp_coupling *ccoup = nullptr;
    const unsigned char mask[3] = {1, 0, 1};
    CHECK(nvp_coupling_create(&ccoup, 3, mask, 1, hidden, 0, crng, nullptr) == NVP_OK);
    nvp::Coupling coup =
        nvp::Coupling::create(3, std::vector<unsigned char>{1, 0, 1}, {16}, 0, rng);
    CHECK(coup.num_params() == nvp_coupling_num_params(ccoup));
    CHECK(same_bits(coup.get_params(), [&] {
        std::vector<float> v(nvp_coupling_num_params(ccoup));
        (void)nvp_coupling_get_params(ccoup, v.size(), v.data());
        return v;
    }()));
    std::vector<float> pts = rng.normal(3 * 6);
    CHECK(nvp_rng_normal(crng, 3 * 6, cy.data()) == NVP_OK);
    CHECK(same_bits(pts.data(), cy.data(), 3 * 6));
    std::vector<float> cfy(18), cfl(6), fl;
    CHECK(nvp_coupling_forward(ccoup, 6, pts.data(), cfy.data(), cfl.data()) == NVP_OK);
    CHECK(same_bits(coup.forward(pts, &fl), cfy) && same_bits(fl, cfl));
    std::vector<float> cdy(18), cg(coup.num_params(), 0.0f), g, dildj(6, 1.0f);
    CHECK(nvp_coupling_inverse_backward(ccoup, 6, cfy.data(), pts.data(), dildj.data(),
                                        cdy.data(), cg.data()) == NVP_OK);
    CHECK(same_bits(coup.inverse_backward(cfy, pts, &dildj, &g), cdy) && same_bits(g, cg));
    std::vector<float> inv = coup.inverse(cfy);
    double err = 0.0;
    for (std::size_t i = 0; i < inv.size(); i++)
        err = std::fmax(err, std::fabs(static_cast<double>(inv[i] - pts[i])));
    CHECK(err < 1e-5);
    std::vector<std::uint64_t> cidx(10);
    CHECK(nvp_rng_index(crng, 10, 17, cidx.data()) == NVP_OK);
    CHECK(rng.index(10, 17) == cidx);

    // Hidden-layer conventions: {} is affine, the flags-only overload the
    // library default.
    nvp::Rng other(1);
    nvp::Chain affine = nvp::Chain::alternating(2, 2, {}, 0, other);
    CHECK(affine.num_params() == 2 * (1 * 2 + 2));
    nvp::Chain dflt = nvp::Chain::alternating(2, 1, 0, rng);
    nvp_chain *cdflt = nullptr;
    CHECK(nvp_chain_create_alternating(&cdflt, 2, 1, 0, nullptr, 0, crng, nullptr) ==
          NVP_OK);
    CHECK(dflt.num_params() == nvp_chain_num_params(cdflt));
    CHECK(same_bits(dflt.params(), nvp_chain_params(cdflt), dflt.num_params()));

    nvp_chain_free(cdflt);
    nvp_coupling_free(ccoup);
    nvp_adam_free(cadam);
    nvp_scaler_free(cscal);
    nvp_chain_free(cch);
    nvp_rng_free(crng);
}

static void test_save_load()
{
    nvp::Rng rng(5);
    std::vector<float> data = nvp::two_moons(rng, 300, 0.05f);
    nvp::Scaler scaler(2);
    scaler.fit(data);
    data = scaler.transform(data);
    nvp::Chain chain = nvp::Chain::alternating(2, 4, {16}, NVP_INIT_ZERO_OUTPUT, rng);
    chain.set_log_scale_clamp(3.0f);
    nvp::Adam adam(chain.num_params());
    adam.set_lr(5e-3f).set_betas(0.8f, 0.99f).set_eps(1e-7f);
    for (int i = 0; i < 5; i++)
        (void)chain.train_step(adam, rng, data, 64);

    // A file with the scaler, loaded with and without it.
    const std::string path = scratch("test_cpp_model.nvp");
    chain.save(path, &scaler);
    std::optional<nvp::Scaler> s;
    nvp::Chain c1 = nvp::Chain::load(path, s);
    CHECK(s && same_bits(s->mean(), scaler.mean()) && same_bits(s->sd(), scaler.sd()));
    CHECK(same_bits(c1.get_params(), chain.get_params()));
    CHECK(c1.coupling(0).log_scale_clamp() == 3.0f);
    nvp::Chain c2 = nvp::Chain::load(path);
    CHECK(same_bits(c2.log_prob(data), chain.log_prob(data)));
    // A buffer without a scaler resets the optional.
    CHECK(s.has_value());
    nvp::Chain c3 = nvp::Chain::load(chain.save_buffer(), s);
    CHECK(!s.has_value() && same_bits(c3.get_params(), chain.get_params()));
    const nvp::Bytes b = chain.save_buffer(&scaler);
    nvp::Chain c4 = nvp::Chain::load_buffer(b.size(), b.data(), s);
    CHECK(s.has_value() && c4.num_layers() == 4);
    std::remove(path.c_str());

    // Resuming training from a saved model and state continues exactly.
    const std::string state_path = scratch("test_cpp_state.nvp");
    adam.save(state_path, &rng);
    chain.save(path);
    for (int i = 0; i < 5; i++)
        (void)chain.train_step(adam, rng, data, 64);
    std::optional<nvp::Rng> r;
    nvp::Adam a2 = nvp::Adam::load(state_path, r);
    nvp::Chain resumed = nvp::Chain::load(path);
    CHECK(r.has_value() && a2.steps() == 5 && a2.lr() == 5e-3f);
    for (int i = 0; i < 5; i++)
        (void)resumed.train_step(a2, *r, data, 64);
    CHECK(same_bits(resumed.get_params(), chain.get_params()));
    CHECK(a2.steps() == adam.steps());
    nvp::Adam a3 = nvp::Adam::load(state_path);
    CHECK(a3.steps() == 5);
    nvp::Bytes st = a3.save_buffer();
    nvp::Adam a4 = nvp::Adam::load(st, r);
    CHECK(!r.has_value() && a4.num_params() == chain.num_params());
    a4.reset();
    CHECK(a4.steps() == 0);
    std::remove(path.c_str());
    std::remove(state_path.c_str());
}

// ----------------------------------------------------- layers of every kind
static float sum_of(const std::vector<float> &v)
{
    float s = 0.0f;
    for (float x : v)
        s += x;
    return s;
}

static double max_abs_diff(const std::vector<float> &a, const std::vector<float> &b)
{
    if (a.size() != b.size())
        return HUGE_VAL;
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); i++)
        m = std::fmax(m, std::fabs(static_cast<double>(a[i]) - b[i]));
    return m;
}

// n rows of a correlated 3-D Gaussian: x = mean + M z.
static std::vector<float> gaussian3(nvp::Rng &rng, std::size_t n)
{
    const double M[3][3] = {{1.5, 0.0, 0.0}, {0.9, 0.6, 0.0}, {-0.4, 0.7, 0.3}};
    const double mean[3] = {2.0, -1.0, 0.5};
    const std::vector<float> z = rng.normal(3 * n);
    std::vector<float> x(3 * n);
    for (std::size_t r = 0; r < n; r++)
        for (int i = 0; i < 3; i++) {
            double v = mean[i];
            for (int j = 0; j < 3; j++)
                v += M[i][j] * z[3 * r + static_cast<std::size_t>(j)];
            x[3 * r + static_cast<std::size_t>(i)] = static_cast<float>(v);
        }
    return x;
}

// The mean log-likelihood of the rows under their own maximum-likelihood
// Gaussian (population covariance), in double: -d/2 (log(2 pi) + 1) -
// log|det Sigma| / 2.
static double gaussian_fit_mean_log_lik(const std::vector<float> &x, std::size_t dim)
{
    const std::size_t n = x.size() / dim;
    std::vector<double> mean(dim, 0.0), cov(dim * dim, 0.0);
    for (std::size_t r = 0; r < n; r++)
        for (std::size_t i = 0; i < dim; i++)
            mean[i] += x[r * dim + i];
    for (double &m : mean)
        m /= static_cast<double>(n);
    for (std::size_t r = 0; r < n; r++)
        for (std::size_t i = 0; i < dim; i++)
            for (std::size_t j = 0; j < dim; j++)
                cov[i * dim + j] += (x[r * dim + i] - mean[i]) * (x[r * dim + j] - mean[j]) /
                                    static_cast<double>(n);
    // log|det| from a Cholesky factorisation.
    double logdet = 0.0;
    for (std::size_t j = 0; j < dim; j++) {
        double s = cov[j * dim + j];
        for (std::size_t k = 0; k < j; k++)
            s -= cov[j * dim + k] * cov[j * dim + k];
        const double c = std::sqrt(s);
        cov[j * dim + j] = c;
        logdet += 2.0 * std::log(c);
        for (std::size_t i = j + 1; i < dim; i++) {
            double t = cov[i * dim + j];
            for (std::size_t k = 0; k < j; k++)
                t -= cov[i * dim + k] * cov[j * dim + k];
            cov[i * dim + j] = t / c;
        }
    }
    const double log2pi = 1.8378770664093453;
    return -0.5 * static_cast<double>(dim) * (log2pi + 1.0) - 0.5 * logdet;
}

// Each kind on its own: kinds, parameter counts, and maps checked against
// their formulas and against the C API.
static void test_layer_kinds()
{
    nvp::Rng rng(21);

    nvp::Layer perm = nvp::Layer::permutation({2, 0, 1});
    CHECK(perm.kind() == "permutation" && perm.dim() == 3 && perm.num_params() == 0);
    CHECK(!perm.is_coupling() && perm.get_params().empty());
    perm.set_params(std::vector<float>{}); // nothing to set, but a valid call
    EXPECT_ERROR(NVP_EDIM, perm.set_params(std::vector<float>{1.0f}));
    std::vector<float> ld;
    const std::vector<float> x = {1.0f, 2.0f, 3.0f, -4.0f, 5.0f, 0.5f};
    CHECK(perm.forward(x, &ld) == (std::vector<float>{3.0f, 1.0f, 2.0f, 0.5f, -4.0f, 5.0f}));
    CHECK(ld == (std::vector<float>{0.0f, 0.0f}));
    CHECK(perm.inverse(perm.forward(x)) == x);

    nvp::Layer act = nvp::Layer::actnorm(3);
    CHECK(act.kind() == "actnorm" && act.num_params() == 6);
    CHECK(act.forward(x) == x); // starts as the identity
    const std::vector<float> sb = {0.5f, -1.0f, 0.0f, 1.0f, 2.0f, -3.0f};
    act.set_params(sb);
    CHECK(act.get_params() == sb);
    std::vector<float> y = act.forward(x, &ld);
    bool formula = true;
    for (std::size_t r = 0; r < 2; r++)
        for (std::size_t i = 0; i < 3; i++) {
            const float want = x[3 * r + i] * std::exp(sb[i]) + sb[3 + i];
            formula = formula && std::fabs(y[3 * r + i] - want) <= 1e-5f * (1 + std::fabs(want));
        }
    CHECK(formula);
    CHECK(std::fabs(ld[0] + 0.5f) < 1e-6f && std::fabs(ld[1] + 0.5f) < 1e-6f);

    // linear: y = L U x + b with dim = 2, A = [[d0, u01], [l10, d1]].
    nvp::Layer lin = nvp::Layer::linear(2);
    CHECK(lin.kind() == "linear" && lin.num_params() == 2 * 2 + 2);
    const float d0 = 0.3f, u01 = -0.7f, l10 = 0.4f, d1 = -0.2f, b0 = 1.0f, b1 = -2.0f;
    lin.set_params(std::vector<float>{d0, u01, l10, d1, b0, b1});
    const std::vector<float> x2 = {1.5f, -0.5f};
    y = lin.forward(x2, &ld);
    const double u0 = std::exp(d0) * 1.5 + u01 * -0.5, u1 = std::exp(d1) * -0.5;
    CHECK(std::fabs(y[0] - (u0 + b0)) < 1e-5 && std::fabs(y[1] - (l10 * u0 + u1 + b1)) < 1e-5);
    CHECK(std::fabs(ld[0] - (d0 + d1)) < 1e-6f);
    std::vector<float> il;
    CHECK(max_abs_diff(lin.inverse(y, &il), x2) < 1e-5 && std::fabs(il[0] + ld[0]) < 1e-6f);

    // A coupling moved into a Layer: the Coupling is left empty.
    nvp::Coupling coup = nvp::Coupling::create(3, std::vector<unsigned char>{1, 0, 1},
                                               {8, 4}, 0, rng);
    CHECK(coup.hidden() == (std::vector<std::size_t>{8, 4}));
    const nvp_coupling *raw = coup.get();
    nvp::Layer cl = std::move(coup);
    CHECK(!coup && cl && cl.kind() == "affine coupling" && cl.is_coupling());
    CHECK(cl.as_coupling().get() == raw && cl.as_coupling().mask() ==
                                               (std::vector<unsigned char>{1, 0, 1}));
    CHECK(cl.num_params() == cl.as_coupling().num_params());
    const std::string msg = EXPECT_ERROR(NVP_EINVAL, act.as_coupling());
    CHECK(msg.find("actnorm") != std::string::npos);

    // Every kind: equal to the C calls, and dL/dy of L = sum(w * x) + c *
    // ildj (x, ildj = inverse(y)) against central differences.
    std::vector<nvp::Layer> all;
    all.push_back(nvp::Layer::random_permutation(3, rng));
    all.push_back(std::move(act));
    all.push_back(nvp::Layer::linear(3));
    all.push_back(std::move(cl));
    all[2].set_params(std::vector<float>{0.1f, 0.2f, -0.3f, 0.4f, -0.2f, 0.5f, -0.6f, 0.7f,
                                         0.05f, 0.1f, 0.2f, 0.3f});
    const std::vector<float> pts = rng.normal(3 * 4);
    const std::vector<float> w = {0.3f, -1.1f, 0.7f};
    const float c = 0.8f;
    for (const nvp::Layer &l : all) {
        const std::size_t n = pts.size() / 3;
        std::vector<float> cy(pts.size()), cld(n), fwd_ld;
        CHECK(nvp_layer_forward(l.get(), n, pts.data(), cy.data(), cld.data()) == NVP_OK);
        CHECK(same_bits(l.forward(pts, &fwd_ld), cy) && same_bits(fwd_ld, cld));
        std::vector<float> dx(pts.size()), dildj(n, c);
        for (std::size_t i = 0; i < pts.size(); i++)
            dx[i] = w[i % 3];
        std::vector<float> grad, cgrad(l.num_params(), 0.0f), cdy(pts.size());
        const std::vector<float> dy = l.inverse_backward(pts, dx, &dildj, &grad);
        CHECK(nvp_layer_inverse_backward(l.get(), n, pts.data(), dx.data(), dildj.data(),
                                         cdy.data(), cgrad.data()) == NVP_OK);
        CHECK(same_bits(dy, cdy) && same_bits(grad, cgrad));
        auto loss = [&](const std::vector<float> &yy) {
            std::vector<float> ildj;
            const std::vector<float> xx = l.inverse(yy, &ildj);
            double s = 0.0;
            for (std::size_t i = 0; i < xx.size(); i++)
                s += static_cast<double>(w[i % 3]) * xx[i];
            for (float v : ildj)
                s += static_cast<double>(c) * v;
            return s;
        };
        double worst = 0.0;
        for (std::size_t i = 0; i < pts.size(); i++) {
            std::vector<float> up = pts, down = pts;
            const float h = 1e-2f;
            up[i] += h;
            down[i] -= h;
            const double fd = (loss(up) - loss(down)) / (static_cast<double>(up[i]) - down[i]);
            worst = std::fmax(worst, std::fabs(fd - dy[i]) / (1.0 + std::fabs(fd)));
        }
        CHECK(worst < 1e-3);
        if (worst >= 1e-3)
            std::fprintf(stderr, "  (layer kind %s: worst relative error %g)\n",
                         std::string(l.kind()).c_str(), worst);
    }

    // Invalid layers.
    EXPECT_ERROR(NVP_EINVAL, nvp::Layer::permutation({0, 0, 1}));
    EXPECT_ERROR(NVP_EINVAL, nvp::Layer::permutation(std::vector<std::size_t>{}));
    EXPECT_ERROR(NVP_EINVAL, nvp::Layer::actnorm(0));
    EXPECT_ERROR(NVP_EINVAL, nvp::Layer::linear(NVP_MAX_DIM + 1));
    EXPECT_ERROR(NVP_EINVAL, nvp::Layer::random_permutation(0, rng));
    std::vector<float> nan_params(6, 0.0f);
    nan_params[4] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_ERROR(NVP_ENONFINITE, all[1].set_params(nan_params));
    CHECK(all[1].get_params() == sb);
    EXPECT_ERROR(NVP_EDIM, all[1].forward(std::vector<float>(4)));
    nvp::Layer empty = std::move(all[0]);
    EXPECT_ERROR(NVP_EINVAL, all[0].forward(pts));
    CHECK(all[0].kind().empty() && all[0].dim() == 0);
}

// Expected outcome of set_kernels(k) on this CPU, decided independently of
// the library where the compiler can ask the CPU.
static bool cpu_runs(nvp::Kernels k)
{
    if (k == nvp::Kernels::Auto || k == nvp::Kernels::Portable)
        return true;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (k == nvp::Kernels::Avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

template <class T>
static void check_kernels(T &obj, const char *what)
{
    const nvp::Kernels best = cpu_runs(nvp::Kernels::Avx512) ? nvp::Kernels::Avx512
                              : cpu_runs(nvp::Kernels::Avx2) ? nvp::Kernels::Avx2
                                                             : nvp::Kernels::Portable;
    CHECK(obj.kernels() == best); // the default is the best the CPU runs
    obj.set_kernels(nvp::Kernels::Portable);
    CHECK(obj.kernels() == nvp::Kernels::Portable);
    for (nvp::Kernels k : {nvp::Kernels::Avx2, nvp::Kernels::Avx512}) {
        obj.set_kernels(nvp::Kernels::Portable);
        if (cpu_runs(k)) {
            obj.set_kernels(k);
            CHECK(obj.kernels() == k);
        } else {
            const std::string msg = EXPECT_ERROR(NVP_EUNSUPPORTED, obj.set_kernels(k));
            CHECK(!msg.empty());
            CHECK(obj.kernels() == nvp::Kernels::Portable);
        }
    }
    obj.set_kernels(nvp::Kernels::Portable);
    EXPECT_ERROR(NVP_EINVAL, obj.set_kernels(static_cast<nvp::Kernels>(7)));
    EXPECT_ERROR(NVP_EINVAL, obj.set_kernels(static_cast<nvp::Kernels>(-1)));
    CHECK(obj.kernels() == nvp::Kernels::Portable);
    obj.set_kernels(nvp::Kernels::Auto);
    CHECK(obj.kernels() == best);
    std::fprintf(stderr, "  (%s kernels: best on this CPU is level %d)\n", what,
                 static_cast<int>(best));
}

// Precision: the default, the refusals, and, where the CPU has
// AVX512-BF16 (asked of the compiler, not of the library), log densities
// that move a little in bfloat16 and come back bit for bit in float.
static void test_precision()
{
    nvp::Rng rng(31);
    nvp::Chain chain = nvp::Chain::alternating(16, 4, {64, 64}, 0, rng);
    CHECK(chain.precision() == nvp::Precision::Fp32);
    EXPECT_ERROR(NVP_EINVAL, chain.set_precision(static_cast<nvp::Precision>(5)));
    bool cpu_bf16 = false;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    cpu_bf16 = __builtin_cpu_supports("avx512bf16");
#endif
    CHECK(nvp::precision_supported(nvp::Precision::Fp32));
    std::vector<float> pts(16 * 200);
    nvp::Rng data(32);
    for (std::size_t i = 0; i < pts.size(); i++)
        pts[i] = std::sin(0.37f * static_cast<float>(i)) * 2.0f;
    // Non-zero output layers, so that the conditioners matter.
    float *p = chain.params();
    for (std::size_t i = 0; i < chain.num_params(); i++)
        p[i] = 0.05f * std::cos(0.11f * static_cast<float>(i));
    const std::vector<float> lp32 = chain.log_prob(pts);
    if (!nvp::precision_supported(nvp::Precision::Bf16)) {
        EXPECT_ERROR(NVP_EUNSUPPORTED, chain.set_precision(nvp::Precision::Bf16));
        CHECK(chain.precision() == nvp::Precision::Fp32);
        std::fprintf(stderr, "  (no AVX512-BF16: bf16 refused, as expected)\n");
        return;
    }
    CHECK(cpu_bf16);
    chain.set_precision(nvp::Precision::Bf16);
    CHECK(chain.precision() == nvp::Precision::Bf16);
    const std::vector<float> lp16 = chain.log_prob(pts);
    std::size_t moved = 0;
    float worst = 0.0f;
    for (std::size_t i = 0; i < lp32.size(); i++) {
        moved += lp16[i] != lp32[i];
        worst = std::max(worst, std::fabs(lp16[i] - lp32[i]));
    }
    CHECK(moved > lp32.size() / 2);
    CHECK(worst < 0.5f);
    chain.set_precision(nvp::Precision::Fp32);
    CHECK(chain.log_prob(pts) == lp32);
}

// A chain of every kind: built from layers (ownership moves), initialised
// from data, trained, saved and loaded, with its kernels chosen.
/* Column names through the wrapper: set, read back, saved and loaded,
 * refused when bad, removed. */
static void test_column_names()
{
    nvp::Rng rng(21);
    nvp::Chain chain = nvp::Chain::alternating(3, 2, {8}, 0, rng);
    CHECK(chain.column_names().empty());
    chain.set_column_names({"a", "b b", "c"});
    CHECK((chain.column_names() == std::vector<std::string>{"a", "b b", "c"}));
    EXPECT_ERROR(NVP_EINVAL, chain.set_column_names({"a", "", "c"}));
    EXPECT_ERROR(NVP_EDIM, chain.set_column_names({"a", "b"}));
    EXPECT_ERROR(NVP_EINVAL, chain.set_column_names({"a", std::string("b\0c", 3), "d"}));
    CHECK(chain.column_names().at(1) == "b b");
    const std::string path = scratch("test_cpp_names.nvp");
    chain.save(path);
    nvp::Chain back = nvp::Chain::load(path);
    CHECK(back.column_names() == chain.column_names());
    back.set_column_names({});
    CHECK(back.column_names().empty());
    std::remove(path.c_str());
}

static void test_chain_of_layers()
{
    Counter cnt;
    const nvp_allocator a = counting(cnt);
    {
        nvp::Rng rng(31, &a);
        const std::vector<float> data = gaussian3(rng, 600);
        auto make_layers = [&](std::vector<nvp::Layer> &layers) {
            layers.push_back(nvp::Layer::linear(3, &a));
            layers.push_back(nvp::Layer::actnorm(3, &a));
            layers.push_back(nvp::Coupling::half(3, false, {16}, NVP_INIT_ZERO_OUTPUT, rng, &a));
            layers.push_back(nvp::Layer::random_permutation(3, rng, &a));
            layers.push_back(nvp::Coupling::create(3, std::vector<unsigned char>{1, 0, 1},
                                                   {16}, NVP_INIT_ZERO_OUTPUT, rng, &a));
            layers.push_back(nvp::Layer::permutation({2, 0, 1}, &a));
        };
        const std::vector<std::string_view> kinds = {"linear", "actnorm", "affine coupling",
                                                     "permutation", "affine coupling",
                                                     "permutation"};

        // A failed construction takes nothing.
        std::vector<nvp::Layer> layers;
        make_layers(layers);
        layers.push_back(nvp::Layer::actnorm(4, &a)); // wrong dimension
        const nvp_layer *first = layers[0].get();
        std::string msg = EXPECT_ERROR(NVP_EDIM, nvp::Chain::from_layers(std::move(layers), &a));
        CHECK(msg.find("layers[6]") != std::string::npos);
        CHECK(layers.size() == 7 && layers[0].get() == first && layers[6]);
        nvp::Base base = nvp::Base::normal(3, &a);
        EXPECT_ERROR(NVP_EDIM, nvp::Chain::create(std::move(base), std::move(layers), &a));
        CHECK(base && layers.size() == 7);
        layers.pop_back();
        nvp::Layer taken = std::move(layers[3]); // leaves an empty slot
        EXPECT_ERROR(NVP_EINVAL, nvp::Chain::create(std::move(base), std::move(layers), &a));
        CHECK(base && layers.size() == 6 && taken);
        layers[3] = std::move(taken);
        EXPECT_ERROR(NVP_EINVAL, nvp::Chain::from_layers(std::vector<nvp::Layer>{}, &a));

        // Success: the chain owns every layer; the vector is emptied.
        std::vector<float> expected_params;
        for (const nvp::Layer &l : layers)
            for (float v : l.get_params())
                expected_params.push_back(v);
        nvp::Chain chain = nvp::Chain::create(std::move(base), std::move(layers), &a);
        CHECK(layers.empty() && !base);
        chain.set_threads(1);
        CHECK(chain.num_layers() == 6 && chain.dim() == 3);
        CHECK(chain.layer_kinds() == kinds);
        CHECK(chain.layer_kind(2) == "affine coupling");
        CHECK(same_bits(chain.get_params(), expected_params));
        std::size_t total = 0;
        for (std::size_t k = 0; k < chain.num_layers(); k++) {
            std::size_t off = 99;
            nvp::LayerView v = chain.layer(k, &off);
            CHECK(off == total && v.kind() == kinds[k] && v.dim() == 3);
            CHECK(v.get() == nvp_chain_layer(chain.get(), k, nullptr));
            CHECK(same_bits(v.get_params().data(), chain.params() + off, v.num_params()));
            CHECK(v.is_coupling() == (kinds[k] == "affine coupling"));
            total += v.num_params();
        }
        CHECK(total == chain.num_params() && total == 12 + 6 + (1 * 16 + 16 + 16 * 4 + 4) + (2 * 16 + 16 + 16 * 2 + 2));
        CHECK(chain.coupling(4).mask() == (std::vector<unsigned char>{1, 0, 1}));
        msg = EXPECT_ERROR(NVP_EINVAL, chain.coupling(1));
        CHECK(msg.find("actnorm") != std::string::npos);
        EXPECT_ERROR(NVP_EINVAL, chain.layer(6));
        EXPECT_ERROR(NVP_EINVAL, chain.layer_kind(6));

        // Data-dependent initialisation: with identity couplings the chain
        // is the full-covariance Gaussian fit of the data.
        const std::vector<float> before = chain.get_params();
        EXPECT_ERROR(NVP_EINVAL, chain.init_from_data(1, data.data()));
        EXPECT_ERROR(NVP_EDIM, chain.init_from_data(std::vector<float>(7)));
        std::vector<float> bad = data;
        bad[5] = std::numeric_limits<float>::infinity();
        EXPECT_ERROR(NVP_ENONFINITE, chain.init_from_data(bad));
        CHECK(same_bits(chain.get_params(), before));
        const double gauss = gaussian_fit_mean_log_lik(data, 3);
        const double untrained = sum_of(chain.log_prob(data)) / 600.0;
        chain.init_from_data(data);
        const double fitted = sum_of(chain.log_prob(data)) / 600.0;
        CHECK(std::fabs(fitted - gauss) < 2e-3 && untrained < gauss - 1.0);
        if (!(std::fabs(fitted - gauss) < 2e-3))
            std::fprintf(stderr, "  (mean log density %.6f, Gaussian fit %.6f)\n",
                         fitted, gauss);
        // A chain of one linear layer is the Gaussian fit too.
        std::vector<nvp::Layer> one;
        one.push_back(nvp::Layer::linear(3, &a));
        nvp::Chain lin = nvp::Chain::from_layers(std::move(one), &a);
        lin.init_from_data(data);
        CHECK(std::fabs(sum_of(lin.log_prob(data)) / 600.0 - gauss) < 2e-3);

        // Training: a few steps, every loss finite, parameters move.
        nvp::Adam adam(chain.num_params(), &a);
        adam.set_lr(1e-3f).set_betas(0.8f, 0.99f);
        CHECK(adam.beta1() == 0.8f && adam.beta2() == 0.99f && adam.eps() == 1e-8f);
        const std::vector<float> init = chain.get_params();
        bool finite = true;
        for (int i = 0; i < 20; i++)
            finite = finite && std::isfinite(chain.train_step(adam, rng, data, 64));
        CHECK(finite && adam.steps() == 20 && !same_bits(chain.get_params(), init));

        // Save and load: same kinds, same bits, same densities, same bytes.
        const nvp::Bytes bytes = chain.save_buffer();
        nvp::Chain back = nvp::Chain::load(bytes, &a);
        CHECK(back.layer_kinds() == kinds);
        CHECK(same_bits(back.get_params(), chain.get_params()));
        CHECK(same_bits(back.log_prob(data), chain.log_prob(data)));
        CHECK(back.save_buffer() == bytes);
        const std::string path = scratch("test_cpp_layers.nvp");
        chain.save(path);
        nvp::Chain from_file = nvp::Chain::load(path, &a);
        CHECK(same_bits(from_file.log_prob(data), chain.log_prob(data)));
        std::remove(path.c_str());
        std::vector<float> z = rng.normal(3 * 5), ld, il;
        const std::vector<float> yy = back.forward(z, &ld);
        CHECK(max_abs_diff(back.inverse(yy, &il), z) < 1e-4);
        CHECK(max_abs_diff(il, std::vector<float>{-ld[0], -ld[1], -ld[2], -ld[3], -ld[4]}) <
              1e-4);

        // Kernels on a chain, a coupling and an optimizer.
        check_kernels(back, "chain");
        nvp::Coupling cp = nvp::Coupling::half(3, true, {8}, 0, rng, &a);
        check_kernels(cp, "coupling");
        check_kernels(adam, "adam");
        // The portable kernels give the C API's portable results.
        back.set_kernels(nvp::Kernels::Portable);
        nvp_chain *cch = nullptr;
        CHECK(nvp_chain_load_buffer(&cch, nullptr, bytes.size(), bytes.data(), nullptr) ==
              NVP_OK);
        CHECK(nvp_chain_set_kernels(cch, NVP_KERNELS_PORTABLE) == NVP_OK);
        std::vector<float> clp(600);
        CHECK(nvp_chain_log_prob(cch, 600, data.data(), clp.data()) == NVP_OK);
        CHECK(same_bits(back.log_prob(data), clp));
        nvp_chain_free(cch);
        // A moved-from chain reports no level and refuses a setting.
        nvp::Chain gone = std::move(back);
        CHECK(static_cast<int>(back.kernels()) == -1);
        EXPECT_ERROR(NVP_EINVAL, back.set_kernels(nvp::Kernels::Portable));
        CHECK(cnt.live > 0);
    }
    CHECK(cnt.live == 0);
}

// Conditional flows: the _given calls against the C API, bit for bit, and
// a fit of y0 = 2c + noise whose conditional draws move with c.
static void test_conditional()
{
    Counter cnt;
    const nvp_allocator a = counting(cnt);
    {
        nvp::Rng rng(41, &a);
        const std::size_t n = 1000;
        // y0 = 2 c + 0.3 e0, y1 = e1 with c ~ N(0, 1).
        const std::vector<float> c = rng.normal(n), e = rng.normal(2 * n);
        std::vector<float> y(2 * n);
        for (std::size_t i = 0; i < n; i++) {
            y[2 * i] = 2.0f * c[i] + 0.3f * e[2 * i];
            y[2 * i + 1] = e[2 * i + 1];
        }
        nvp::Chain flow = nvp::Chain::conditional(2, 1, 4, {32, 32}, 0, rng, &a);
        CHECK(flow.context_dim() == 1);
        CHECK(flow.dim() == 2);
        CHECK(flow.coupling(0).context_dim() == 1);
        CHECK(flow.layer(1).context_dim() == 1);
        // The plain calls refuse it; a context of the wrong size is caught
        // by the wrapper.
        EXPECT_ERROR(NVP_EINVAL, flow.log_prob(y));
        EXPECT_ERROR(NVP_EDIM, flow.log_prob_given(y, std::vector<float>(n + 1)));
        EXPECT_ERROR(NVP_EDIM, flow.sample_given_one(rng, 4, std::vector<float>{1, 2}));

        nvp::Adam adam(flow.num_params(), &a);
        float first = 0.0f, last = 0.0f;
        for (int step = 0; step < 600; step++) {
            const float loss = flow.train_step_given(adam, rng, y, c, 100);
            if (step < 20)
                first += loss / 20;
            if (step >= 580)
                last += loss / 20;
        }
        CHECK(last < first - 0.5f);

        // The same calls through the C API give the same bits.
        const std::vector<float> lp = flow.log_prob_given(y, c);
        std::vector<float> clp(n);
        CHECK(nvp_chain_log_prob_given(flow.get(), n, y.data(), c.data(), clp.data()) ==
              NVP_OK);
        CHECK(same_bits(lp, clp));
        std::vector<float> grad, cgrad(flow.num_params());
        const float loss = flow.nll_grad_given(y, c, grad);
        float closs = 0.0f;
        CHECK(nvp_chain_nll_grad_given(flow.get(), n, y.data(), c.data(), cgrad.data(),
                                       &closs) == NVP_OK);
        CHECK(same_bits(grad, cgrad) && loss == closs);
        std::vector<float> dc, slp;
        const std::vector<float> dy = flow.score_given(y, c, &dc, &slp);
        std::vector<float> cdy(2 * n), cdc(n);
        CHECK(nvp_chain_score_given(flow.get(), n, y.data(), c.data(), cdy.data(),
                                    cdc.data(), nullptr) == NVP_OK);
        CHECK(same_bits(dy, cdy) && same_bits(dc, cdc));
        CHECK(max_abs_diff(slp, lp) < 1e-4);
        // For the exact model d log p / dc = 2 (y0 - 2c) / 0.09: only its
        // sign is checked, at a y0 well above its mean 2c.
        std::vector<float> dc1;
        flow.score_given(std::vector<float>{3.0f, 0.0f}, std::vector<float>{0.0f}, &dc1);
        CHECK(dc1.size() == 1 && dc1[0] > 0.0f);

        // Conditional draws follow c: E[y0 | c] = 2c.
        for (float cv : {-1.0f, 0.5f, 1.0f}) {
            std::vector<float> dlp;
            const std::vector<float> s =
                flow.sample_given_one(rng, 2000, std::vector<float>{cv}, &dlp);
            CHECK(s.size() == 4000 && dlp.size() == 2000);
            double m0 = 0.0;
            for (std::size_t i = 0; i < 2000; i++)
                m0 += s[2 * i] / 2000.0;
            CHECK(std::fabs(m0 - 2.0 * cv) < 0.2);
        }
        // One draw per context row; the same stream gives the C call's bits.
        const std::vector<float> ctx3 = {-1.0f, 0.0f, 1.0f};
        nvp::Rng r1(5, &a), r2(5, &a);
        std::vector<float> l3;
        const std::vector<float> s3 = flow.sample_given(r1, ctx3, &l3);
        std::vector<float> cs3(6), cl3(3);
        CHECK(nvp_chain_sample_given(flow.get(), r2.get(), 3, ctx3.data(), cs3.data(),
                                     cl3.data()) == NVP_OK);
        CHECK(same_bits(s3, cs3) && same_bits(l3, cl3));

        // forward_given and inverse_given invert each other; the trace ends
        // at the forward map's result.
        const std::vector<float> z = rng.normal(2 * 3);
        std::vector<float> ld, il;
        const std::vector<float> fy = flow.forward_given(z, ctx3, &ld);
        CHECK(max_abs_diff(flow.inverse_given(fy, ctx3, &il), z) < 1e-4);
        CHECK(std::fabs(ld[1] + il[1]) < 1e-4);
        const std::vector<float> tr = flow.forward_trace_given(z, ctx3);
        CHECK(tr.size() == (flow.num_layers() + 1) * 6);
        CHECK(same_bits(std::vector<float>(tr.end() - 6, tr.end()), fy));

        // The unconditional score against the C call.
        nvp::Chain plain = nvp::Chain::alternating(2, 2, {8}, 0, rng, &a);
        std::vector<float> plp;
        const std::vector<float> g = plain.score(y, &plp);
        std::vector<float> cg(2 * n);
        CHECK(nvp_chain_score(plain.get(), n, y.data(), cg.data(), nullptr) == NVP_OK);
        CHECK(same_bits(g, cg) && max_abs_diff(plp, plain.log_prob(y)) < 1e-4);
        // On a chain without context the _given calls take an empty one.
        CHECK(same_bits(plain.log_prob_given(y, {}), plain.log_prob(y)));
        EXPECT_ERROR(NVP_EINVAL, plain.sample_given(rng, {}));
    }
    {
        // A chain of layers: linear, then conditional couplings, set from
        // data with init_from_data_given; the layer calls with a context.
        nvp::Rng rng(43, &a);
        const std::size_t n = 400;
        const std::vector<float> c = rng.normal(2 * n), y = rng.normal(3 * n);
        nvp::Coupling cp = nvp::Coupling::conditional(
            3, 2, std::vector<unsigned char>{1, 0, 1}, {8}, 0, rng, &a);
        CHECK(cp.context_dim() == 2);
        nvp::Layer layer(std::move(cp));
        CHECK(layer.context_dim() == 2);
        const std::vector<float> x3 = rng.normal(3 * 4), c4 = rng.normal(2 * 4);
        std::vector<float> ld, il;
        const std::vector<float> fx = layer.forward_given(x3, c4, &ld);
        CHECK(max_abs_diff(layer.inverse_given(fx, c4, &il), x3) < 1e-4);
        EXPECT_ERROR(NVP_EINVAL, layer.forward(x3));
        EXPECT_ERROR(NVP_EDIM, layer.forward_given(x3, rng.normal(3)));
        std::vector<float> grad, dctx;
        const std::vector<float> dx(x3.size(), 1.0f);
        const std::vector<float> dyv =
            layer.inverse_backward_given(fx, c4, dx, nullptr, &grad, &dctx);
        std::vector<float> cdy(12), cdc(8), cgrad(layer.num_params(), 0.0f);
        CHECK(nvp_layer_inverse_backward_given(layer.get(), 4, fx.data(), c4.data(),
                                               dx.data(), nullptr, cdy.data(), cdc.data(),
                                               cgrad.data()) == NVP_OK);
        CHECK(same_bits(dyv, cdy) && same_bits(dctx, cdc) && same_bits(grad, cgrad));

        std::vector<nvp::Layer> layers;
        layers.push_back(nvp::Layer::linear(3, &a));
        layers.push_back(nvp::Coupling::conditional(
            3, 2, std::vector<unsigned char>{0, 1, 0}, {8}, NVP_INIT_ZERO_OUTPUT, rng, &a));
        layers.push_back(nvp::Coupling::conditional(
            3, 2, std::vector<unsigned char>{1, 0, 1}, {8}, NVP_INIT_ZERO_OUTPUT, rng, &a));
        nvp::Chain chain = nvp::Chain::from_layers(std::move(layers), &a);
        CHECK(chain.context_dim() == 2);
        // The linear layer starts as the identity and is then set to the
        // sample's whitening, which no finite sample makes the identity.
        const std::vector<float> before = chain.layer(0).get_params();
        chain.init_from_data_given(y, c);
        CHECK(max_abs_diff(chain.layer(0).get_params(), before) > 1e-3);
        CHECK(std::isfinite(sum_of(chain.log_prob_given(y, c))));
        EXPECT_ERROR(NVP_EDIM, chain.init_from_data_given(y, rng.normal(n)));
    }
    CHECK(cnt.live == 0);
}

// ----------------------------------------------- variational inference
// The target of the reverse-KL tests: log p~(y) = -(y - mu)' P (y - mu) / 2
// for the correlated Gaussian N(mu, Sigma), Sigma = [[s0^2, r s0 s1],
// [r s0 s1, s1^2]]; log Z = log 2 pi + log det(Sigma) / 2.
struct GaussTarget {
    double mu[2] = {1.0, -0.5};
    double s0 = 1.5, s1 = 0.6, r = 0.8;
    double det() const { return s0 * s0 * s1 * s1 * (1 - r * r); }
    double log_z() const { return std::log(8 * std::atan(1.0)) + 0.5 * std::log(det()); }
    void operator()(std::size_t n, std::size_t dim, const float *y, float *log_p,
                    float *dlogp_dy) const
    {
        const double c = r * s0 * s1, d = det();
        const double p00 = s1 * s1 / d, p01 = -c / d, p11 = s0 * s0 / d;
        for (std::size_t i = 0; i < n; i++) {
            const double d0 = y[i * dim] - mu[0], d1 = y[i * dim + 1] - mu[1];
            const double g0 = -(p00 * d0 + p01 * d1), g1 = -(p01 * d0 + p11 * d1);
            log_p[i] = static_cast<float>(0.5 * (d0 * g0 + d1 * g1));
            dlogp_dy[2 * i] = static_cast<float>(g0);
            dlogp_dy[2 * i + 1] = static_cast<float>(g1);
        }
    }
};

// The same target as a C callback (user: a GaussTarget).
extern "C" int gauss_c_callback(void *user, std::size_t n, std::size_t dim,
                                const float *y, float *log_p, float *dlogp_dy)
{
    (*static_cast<const GaussTarget *>(user))(n, dim, y, log_p, dlogp_dy);
    return 0;
}

// A C callback that refuses with its own code.
extern "C" int refusing_c_callback(void *, std::size_t, std::size_t, const float *,
                                   float *, float *)
{
    return 7;
}

struct CallbackThrew {
    int id;
};

static void test_variational()
{
    Counter cnt;
    const nvp_allocator a = counting(cnt);
    {
        // forward_backward: the wrapper against the C call, bit for bit,
        // on a chain of every kind.
        nvp::Rng rng(81, &a);
        std::vector<nvp::Layer> layers;
        layers.push_back(nvp::Layer::linear(3, &a));
        layers.push_back(nvp::Layer::actnorm(3, &a));
        layers.push_back(nvp::Coupling::half(3, false, {8}, 0, rng, &a));
        layers.push_back(nvp::Layer::random_permutation(3, rng, &a));
        layers.push_back(nvp::Coupling::half(3, true, {8}, 0, rng, &a));
        nvp::Chain chain = nvp::Chain::from_layers(std::move(layers), &a);
        const std::size_t n = 5, np = chain.num_params();
        const std::vector<float> x = rng.normal(3 * n), dy = rng.normal(3 * n),
                                 dld = rng.normal(n);
        std::vector<float> grad;
        const std::vector<float> dx = chain.forward_backward(x, dy, &dld, &grad);
        std::vector<float> cdx(3 * n), cgrad(np, 0.0f);
        CHECK(nvp_chain_forward_backward(chain.get(), n, x.data(), dy.data(), dld.data(),
                                         cdx.data(), cgrad.data()) == NVP_OK);
        CHECK(same_bits(dx, cdx) && same_bits(grad, cgrad));
        // grad is added to: a second call doubles it (up to rounding: the
        // call adds its terms one by one).
        chain.forward_backward(x, dy, &dld, &grad);
        std::vector<float> twice(cgrad);
        for (float &v : twice)
            v *= 2.0f;
        const double scale = 1.0 + max_abs_diff(twice, std::vector<float>(np, 0.0f));
        CHECK(grad.size() == np && max_abs_diff(grad, twice) < 1e-5 * scale);
        // No dlogdet is zero; the pointer form with dx == nullptr.
        const std::vector<float> zeros(n, 0.0f);
        CHECK(same_bits(chain.forward_backward(x, dy),
                        chain.forward_backward(x, dy, &zeros)));
        std::vector<float> pg(np, 0.0f);
        chain.forward_backward(n, x.data(), dy.data(), dld.data(), nullptr, pg.data());
        CHECK(same_bits(pg, cgrad));
        EXPECT_ERROR(NVP_EDIM, chain.forward_backward(x, rng.normal(3)));
        const std::vector<float> short_ld(n - 1);
        EXPECT_ERROR(NVP_EDIM, chain.forward_backward(x, dy, &short_ld));
        std::vector<float> wrong(np + 1);
        EXPECT_ERROR(NVP_EDIM, chain.forward_backward(x, dy, nullptr, &wrong));
        std::vector<float> bad = dy;
        bad[1] = std::numeric_limits<float>::quiet_NaN();
        EXPECT_ERROR(NVP_ENONFINITE, chain.forward_backward(x, bad));
        // On a chain without context the _given form takes an empty one.
        std::vector<float> ggrad, gdc;
        CHECK(same_bits(chain.forward_backward_given(x, {}, dy, &dld, &ggrad, &gdc), dx));
        CHECK(same_bits(ggrad, cgrad) && gdc.empty());

        // Each layer, through its view.
        for (std::size_t k = 0; k < chain.num_layers(); k++) {
            const nvp::LayerView v = chain.layer(k);
            std::vector<float> lg;
            const std::vector<float> ldx = v.forward_backward(x, dy, &dld, &lg);
            std::vector<float> cldx(3 * n), clg(v.num_params(), 0.0f);
            CHECK(nvp_layer_forward_backward(v.get(), n, x.data(), dy.data(), dld.data(),
                                             cldx.data(), v.num_params() ? clg.data()
                                                                         : nullptr) ==
                  NVP_OK);
            CHECK(same_bits(ldx, cldx) && same_bits(lg, clg));
        }

        // A conditional chain and a conditional layer: dcontext too.
        nvp::Chain cond = nvp::Chain::conditional(3, 2, 2, {8}, 0, rng, &a);
        const std::vector<float> ctx = rng.normal(2 * n);
        std::vector<float> cg, dc;
        const std::vector<float> cdxv = cond.forward_backward_given(x, ctx, dy, &dld, &cg, &dc);
        std::vector<float> ccdx(3 * n), ccdc(2 * n), ccg(cond.num_params(), 0.0f);
        CHECK(nvp_chain_forward_backward_given(cond.get(), n, x.data(), ctx.data(), dy.data(),
                                               dld.data(), ccdx.data(), ccdc.data(),
                                               ccg.data()) == NVP_OK);
        CHECK(same_bits(cdxv, ccdx) && same_bits(dc, ccdc) && same_bits(cg, ccg));
        EXPECT_ERROR(NVP_EINVAL, cond.forward_backward(x, dy));
        EXPECT_ERROR(NVP_EDIM, cond.forward_backward_given(x, rng.normal(3), dy));
        nvp::Layer cl(nvp::Coupling::conditional(3, 2, std::vector<unsigned char>{1, 0, 1},
                                                 {8}, 0, rng, &a));
        std::vector<float> lg, ldc;
        const std::vector<float> ldx = cl.forward_backward_given(x, ctx, dy, nullptr, &lg, &ldc);
        std::vector<float> cldx(3 * n), cldc(2 * n), clg(cl.num_params(), 0.0f);
        CHECK(nvp_layer_forward_backward_given(cl.get(), n, x.data(), ctx.data(), dy.data(),
                                               nullptr, cldx.data(), cldc.data(),
                                               clg.data()) == NVP_OK);
        CHECK(same_bits(ldx, cldx) && same_bits(ldc, cldc) && same_bits(lg, clg));
    }
    {
        // Reverse KL: a callable and the C callback give the same bits.
        const GaussTarget target;
        const std::size_t batch = 32;
        nvp::Rng r0(90, &a), r1(90, &a);
        nvp::Chain c0 = nvp::Chain::alternating(2, 3, {16}, 0, r0, &a);
        nvp::Chain c1 = nvp::Chain::alternating(2, 3, {16}, 0, r1, &a);
        CHECK(same_bits(c0.get_params(), c1.get_params()));
        std::vector<float> g0, g1(c1.num_params());
        const float l0 = c0.reverse_kl_grad(r0, batch, target, g0);
        float l1 = 0.0f;
        CHECK(nvp_chain_reverse_kl_grad(c1.get(), r1.get(), batch, gauss_c_callback,
                                        const_cast<GaussTarget *>(&target), g1.data(),
                                        &l1) == NVP_OK);
        CHECK(same_bits(g0, g1) && l0 == l1);
        // The raw form of the wrapper.
        std::vector<float> g2(c0.num_params());
        nvp::Rng r2(91, &a), r3(91, &a);
        const float l2 = c0.reverse_kl_grad(r2, batch, gauss_c_callback,
                                            const_cast<GaussTarget *>(&target), g2.data());
        const float l3 = c0.reverse_kl_grad(r3, batch, target, g1.data());
        CHECK(same_bits(g2, g1) && l2 == l3);

        // Steps: the callable (here a lambda holding a reference) and the
        // C callback train two copies to the same bits.
        nvp::Adam o0(c0.num_params(), &a), o1(c1.num_params(), &a);
        o0.set_lr(1e-2f);
        o1.set_lr(1e-2f);
        std::size_t calls = 0;
        auto counted = [&](std::size_t nn, std::size_t d, const float *y, float *lp,
                           float *g) {
            ++calls;
            target(nn, d, y, lp, g);
        };
        for (int s = 0; s < 5; s++) {
            const float a0 = c0.reverse_kl_step(o0, r0, batch, counted);
            const float a1 = c1.reverse_kl_step(o1, r1, batch, gauss_c_callback,
                                                const_cast<GaussTarget *>(&target));
            CHECK(a0 == a1);
        }
        CHECK(calls == 5 && o0.steps() == 5);
        CHECK(same_bits(c0.get_params(), c1.get_params()));

        // Failures leave chain and optimizer as they were.
        const std::vector<float> before = c0.get_params();
        bool caught = false;
        try {
            c0.reverse_kl_step(o0, r0, batch,
                               [](std::size_t, std::size_t, const float *, float *,
                                  float *) { throw CallbackThrew{42}; });
        } catch (const CallbackThrew &e) {
            caught = e.id == 42;
        }
        CHECK(caught);
        CHECK(same_bits(c0.get_params(), before) && o0.steps() == 5);
        caught = false;
        try {
            std::vector<float> g;
            c0.reverse_kl_grad(r0, batch,
                               [](std::size_t, std::size_t, const float *, float *,
                                  float *) { throw std::runtime_error("from the callback"); },
                               g);
        } catch (const std::runtime_error &e) {
            caught = std::string(e.what()) == "from the callback";
        }
        CHECK(caught);
        // An nvp::Error thrown by the callable comes out unchanged too.
        const std::string m = EXPECT_ERROR(
            NVP_EDIM, c0.reverse_kl_step(o0, r0, batch,
                                         [](std::size_t, std::size_t, const float *,
                                            float *, float *) {
                                             throw nvp::Error(NVP_EDIM, "mine");
                                         }));
        CHECK(m == "mine");
        EXPECT_ERROR(NVP_ENONFINITE,
                     c0.reverse_kl_step(o0, r0, batch,
                                        [&](std::size_t nn, std::size_t d, const float *y,
                                            float *lp, float *g) {
                                            target(nn, d, y, lp, g);
                                            lp[nn - 1] = std::nanf("");
                                        }));
        EXPECT_ERROR(7, c0.reverse_kl_step(o0, r0, batch, refusing_c_callback, nullptr));
        CHECK(same_bits(c0.get_params(), before) && o0.steps() == 5);
        // The chain works after them.
        c0.reverse_kl_step(o0, r0, batch, target);
        CHECK(o0.steps() == 6);
    }
    {
        // Training: a linear layer, an actnorm and two couplings reach the
        // correlated Gaussian; the ELBO comes to within 0.05 of log Z.
        const GaussTarget target;
        nvp::Rng rng(95, &a);
        std::vector<nvp::Layer> layers;
        layers.push_back(nvp::Layer::linear(2, &a));
        layers.push_back(nvp::Layer::actnorm(2, &a));
        layers.push_back(nvp::Coupling::half(2, false, {16}, NVP_INIT_ZERO_OUTPUT, rng, &a));
        layers.push_back(nvp::Coupling::half(2, true, {16}, NVP_INIT_ZERO_OUTPUT, rng, &a));
        nvp::Chain chain = nvp::Chain::from_layers(std::move(layers), &a);
        chain.set_threads(1);
        nvp::Adam opt(chain.num_params(), &a);
        opt.set_lr(1e-2f);
        const int steps = 400, last = 50;
        double tail = 0.0;
        for (int s = 0; s < steps; s++) {
            const float loss = chain.reverse_kl_step(opt, rng, 128, target);
            if (s >= steps - last)
                tail += loss / last;
        }
        CHECK(std::fabs(-tail - target.log_z()) < 0.05);
    }
    {
        // The _given forms against the C calls.
        const GaussTarget target;
        nvp::Rng r0(97, &a), r1(97, &a);
        nvp::Chain c0 = nvp::Chain::conditional(2, 1, 2, {8}, 0, r0, &a);
        nvp::Chain c1 = nvp::Chain::conditional(2, 1, 2, {8}, 0, r1, &a);
        const std::size_t batch = 16;
        const std::vector<float> ctx = r0.normal(batch), ctx1 = r1.normal(batch);
        std::vector<float> g0, g1(c1.num_params());
        const float l0 = c0.reverse_kl_grad_given(r0, batch, ctx, target, g0);
        float l1 = 0.0f;
        CHECK(nvp_chain_reverse_kl_grad_given(c1.get(), r1.get(), batch, ctx1.data(),
                                              gauss_c_callback,
                                              const_cast<GaussTarget *>(&target),
                                              g1.data(), &l1) == NVP_OK);
        CHECK(same_bits(g0, g1) && l0 == l1);
        nvp::Adam o0(c0.num_params(), &a), o1(c1.num_params(), &a);
        const float s0 = c0.reverse_kl_step_given(o0, r0, batch, ctx, target);
        const float s1 = c1.reverse_kl_step_given(o1, r1, batch, ctx1.data(),
                                                  gauss_c_callback,
                                                  const_cast<GaussTarget *>(&target));
        CHECK(s0 == s1 && same_bits(c0.get_params(), c1.get_params()));
        EXPECT_ERROR(NVP_EDIM, c0.reverse_kl_step_given(o0, r0, batch,
                                                        std::vector<float>(batch - 1),
                                                        target));
        EXPECT_ERROR(NVP_EINVAL, c0.reverse_kl_step(o0, r0, batch, target));
    }
    {
        // The affine form of a coupling: set before a chain takes it, read
        // through the chain's view.
        nvp::Rng rng(99, &a);
        nvp::Coupling c = nvp::Coupling::half(2, false, {8}, 0, rng, &a);
        CHECK(c.affine_form() == NVP_AFFINE_EXP);
        c.set_affine_form(NVP_AFFINE_SIGMOID);
        CHECK(c.affine_form() == NVP_AFFINE_SIGMOID);
        EXPECT_ERROR(NVP_EINVAL, c.set_affine_form(5));
        CHECK(c.affine_form() == NVP_AFFINE_SIGMOID);
        std::vector<nvp::Layer> layers;
        layers.push_back(std::move(c));
        nvp::Chain chain = nvp::Chain::from_layers(std::move(layers), &a);
        CHECK(chain.layer(0).as_coupling().affine_form() == NVP_AFFINE_SIGMOID);
        CHECK(nvp::Coupling::adopt(nullptr).affine_form() == -1);
    }
    CHECK(cnt.live == 0);
}

static const double kPi = 3.14159265358979323846;

// log of the 2-D Gaussian N(x; mu, C) in double, and its gradient in g.
static double log_gauss2(const double x[2], const double mu[2], const double C[4],
                         double g[2])
{
    const double det = C[0] * C[3] - C[1] * C[2];
    const double inv[4] = {C[3] / det, -C[1] / det, -C[2] / det, C[0] / det};
    const double d[2] = {x[0] - mu[0], x[1] - mu[1]};
    const double q0 = inv[0] * d[0] + inv[1] * d[1];
    const double q1 = inv[2] * d[0] + inv[3] * d[1];
    g[0] = -q0;
    g[1] = -q1;
    return -std::log(2.0 * kPi) - 0.5 * std::log(det) - 0.5 * (d[0] * q0 + d[1] * q1);
}

// Two well separated 2-D clusters of n rows each.
static std::vector<float> two_clusters(nvp::Rng &rng, std::size_t n)
{
    const std::vector<float> z = rng.normal(4 * n);
    std::vector<float> x(4 * n);
    for (std::size_t r = 0; r < 2 * n; r++) {
        const bool right = r % 2 == 1;
        x[2 * r] = (right ? 4.0f : -4.0f) + 0.5f * z[2 * r];
        x[2 * r + 1] = (right ? 1.0f : -1.0f) + (right ? 0.3f : 0.8f) * z[2 * r + 1];
    }
    return x;
}

static void test_mixture_base()
{
    Counter cnt;
    const nvp_allocator a = counting(cnt);
    {
        // A 2-component mixture against its density computed by hand.
        const std::vector<float> w = {1.0f, 3.0f}; // normalised: 1/4, 3/4
        const std::vector<float> means = {0.0f, 0.0f, 1.0f, -1.0f};
        const std::vector<float> covs = {2.0f, 0.5f, 0.5f, 1.0f, 1.0f, 0.0f, 0.0f, 4.0f};
        nvp::Base mix = nvp::Base::mixture(w, means, covs, &a);
        CHECK(mix && mix.dim() == 2 && mix.components() == 2);
        CHECK(mix.kind() == NVP_BASE_MIXTURE);
        CHECK(nvp::Base::normal(2, &a).components() == 1);
        CHECK(nvp::Base::normal(2, &a).kind() == NVP_BASE_NORMAL);
        CHECK(nvp::Base::adopt(nullptr).components() == 0);
        CHECK(nvp::Base::adopt(nullptr).kind() == -1);
        const std::vector<float> x = {0.5f, 0.25f, -1.0f, 2.0f, 3.0f, -3.0f};
        const std::vector<float> lp = mix.log_prob(x);
        const std::vector<float> g = mix.log_prob_grad(x);
        CHECK(lp.size() == 3 && g.size() == 6);
        for (std::size_t r = 0; r < 3; r++) {
            const double xr[2] = {x[2 * r], x[2 * r + 1]};
            const double mu0[2] = {0.0, 0.0}, mu1[2] = {1.0, -1.0};
            const double C0[4] = {2.0, 0.5, 0.5, 1.0}, C1[4] = {1.0, 0.0, 0.0, 4.0};
            double g0[2], g1[2];
            const double l0 = std::log(0.25) + log_gauss2(xr, mu0, C0, g0);
            const double l1 = std::log(0.75) + log_gauss2(xr, mu1, C1, g1);
            const double top = std::fmax(l0, l1);
            const double want = top + std::log(std::exp(l0 - top) + std::exp(l1 - top));
            CHECK(std::fabs(lp[r] - want) < 1e-5);
            const double r0 = std::exp(l0 - want), r1 = std::exp(l1 - want);
            for (std::size_t j = 0; j < 2; j++)
                CHECK(std::fabs(g[2 * r + j] - (r0 * g0[j] + r1 * g1[j])) < 1e-5);
        }
        // The pointer form is the same base.
        nvp::Base same = nvp::Base::mixture(2, 2, w.data(), means.data(), covs.data(), &a);
        CHECK(same_bits(same.log_prob(x), lp));
        // Draws: their mean is the weighted mean of the means.
        nvp::Rng rng(5, &a);
        const std::vector<float> s = mix.sample(rng, 20000);
        double m0 = 0.0, m1 = 0.0;
        for (std::size_t r = 0; r < 20000; r++) {
            m0 += s[2 * r];
            m1 += s[2 * r + 1];
        }
        CHECK(std::fabs(m0 / 20000 - 0.75) < 0.05 && std::fabs(m1 / 20000 + 0.75) < 0.05);

        // clone: an equal base owned by the caller, of a Base or a view.
        nvp::Base copy = mix.clone(&a);
        CHECK(copy && copy.get() != mix.get() && copy.components() == 2 && copy.dim() == 2);
        CHECK(same_bits(copy.log_prob(x), lp));
        nvp::Base ncopy = nvp::Base::normal(3, &a).clone();
        CHECK(ncopy.components() == 1 && ncopy.dim() == 3 && ncopy.kind() == NVP_BASE_NORMAL);
        nvp::Base gone = std::move(copy);
        EXPECT_ERROR(NVP_EINVAL, copy.clone());

        // Invalid mixtures: the library's checks ...
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture({1.0f, 0.0f}, means, covs, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture({1.0f, -1.0f}, means, covs, &a));
        std::vector<float> bad = covs;
        bad[1] = 0.4f; // not symmetric
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture(w, means, bad, &a));
        bad = covs;
        bad[1] = bad[2] = 3.0f; // not positive definite
        std::string msg = EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture(w, means, bad, &a));
        CHECK(msg.find("positive definite") != std::string::npos);
        bad = means;
        bad[3] = std::numeric_limits<float>::quiet_NaN();
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture(w, bad, covs, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture({}, {}, {}, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture(2, 65, w.data(), means.data(),
                                                    covs.data(), &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::mixture(2, 2, nullptr, means.data(),
                                                    covs.data(), &a));
        // ... and the wrapper's sizes.
        EXPECT_ERROR(NVP_EDIM, nvp::Base::mixture(w, {0.0f, 0.0f, 1.0f}, covs, &a));
        EXPECT_ERROR(NVP_EDIM, nvp::Base::mixture(w, means, {1.0f, 0.0f, 0.0f, 1.0f}, &a));

        // Fitting: two separated clusters want two components.
        const std::vector<float> data = two_clusters(rng, 300);
        nvp::Rng r1(7, &a), r2(7, &a);
        nvp::Base fit2 = nvp::Base::fit_mixture(data, 2, 2, r1, &a);
        nvp::Base fit2b = nvp::Base::fit_mixture(600, 2, data.data(), 2, r2, &a);
        nvp::Base fit1 = nvp::Base::fit_mixture(data, 2, 1, r1, &a);
        CHECK(fit2.components() == 2 && fit2.dim() == 2 && fit1.components() == 1);
        CHECK(fit1.kind() == NVP_BASE_MIXTURE); // one component, still a mixture
        CHECK(same_bits(fit2.log_prob(data), fit2b.log_prob(data))); // same seed
        const double ll2 = sum_of(fit2.log_prob(data)) / 600.0;
        const double ll1 = sum_of(fit1.log_prob(data)) / 600.0;
        CHECK(ll2 > ll1 + 1.0);
        CHECK(std::fabs(ll1 - gaussian_fit_mean_log_lik(data, 2)) < 1e-3);
        // the clusters' own: -log 2 - log(2 pi e) - the mean of log det C / 2
        const double clusters = -std::log(2.0) - (std::log(2.0 * kPi) + 1.0) -
                                0.25 * (std::log(0.25 * 0.64) + std::log(0.25 * 0.09));
        CHECK(std::fabs(ll2 - clusters) < 0.1);

        // Invalid fits.
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::fit_mixture(std::vector<float>(6, 1.0f), 2, 4, r1, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::fit_mixture(data, 2, 0, r1, &a));
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::fit_mixture(data, 2, 65, r1, &a));
        EXPECT_ERROR(NVP_EDIM, nvp::Base::fit_mixture(std::vector<float>(7), 2, 1, r1, &a));
        bad = data;
        bad[9] = std::numeric_limits<float>::infinity();
        EXPECT_ERROR(NVP_ENONFINITE, nvp::Base::fit_mixture(bad, 2, 2, r1, &a));
        nvp::Rng none = nvp::Rng::adopt(nullptr);
        EXPECT_ERROR(NVP_EINVAL, nvp::Base::fit_mixture(data, 2, 2, none, &a));

        // set_base: a chain of zero-initialised couplings is the identity,
        // so its log density becomes the base's.
        nvp::Chain chain = nvp::Chain::alternating(2, 4, {8}, NVP_INIT_ZERO_OUTPUT, rng, &a);
        chain.set_threads(1);
        CHECK(chain.base().components() == 1);
        CHECK(max_abs_diff(chain.log_prob(x), nvp::Base::normal(2).log_prob(x)) < 1e-5);
        const std::vector<float> want = fit2.log_prob(data);
        const nvp_base *raw = fit2.get();
        chain.set_base(std::move(fit2));
        CHECK(!fit2 && nvp_chain_base(chain.get()) == raw);
        CHECK(chain.base().components() == 2 && chain.base().get() == raw);
        CHECK(max_abs_diff(chain.log_prob(data), want) < 1e-4);
        // A clone of the chain's base outlives the chain's replacing it.
        nvp::Base kept = chain.base().clone(&a);
        chain.set_base(std::move(mix));
        CHECK(same_bits(chain.base().log_prob(x), lp) && same_bits(kept.log_prob(data), want));

        // Failures leave the base with the caller and the chain unchanged.
        nvp::Base three = nvp::Base::mixture({1.0f}, {0.0f, 0.0f, 0.0f},
                                             {1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f,
                                              0.0f, 0.0f, 1.0f}, &a);
        const nvp_base *three_raw = three.get();
        msg = EXPECT_ERROR(NVP_EDIM, chain.set_base(std::move(three)));
        CHECK(msg == nvp_chain_errmsg(chain.get()));
        CHECK(three && three.get() == three_raw && three.dim() == 3);
        CHECK(chain.base().components() == 2 && same_bits(chain.base().log_prob(x), lp));
        EXPECT_ERROR(NVP_EINVAL, chain.set_base(nvp::Base::adopt(nullptr)));
        nvp::Base own = nvp::Base::adopt(const_cast<nvp_base *>(nvp_chain_base(chain.get())));
        EXPECT_ERROR(NVP_EINVAL, chain.set_base(std::move(own)));
        CHECK(own.release() == nvp_chain_base(chain.get())); // still the chain's
        nvp::Chain moved = std::move(chain);
        nvp::Base two = nvp::Base::normal(2, &a);
        EXPECT_ERROR(NVP_EINVAL, chain.set_base(std::move(two)));
        CHECK(two);
        moved.set_base(std::move(two));
        CHECK(!two && moved.base().components() == 1);
    }
    CHECK(cnt.live == 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_scratch = argv[1];
    try {
        test_types();
        test_version();
        test_multiple_tus();
        test_raii();
        test_moves();
        test_errors();
        test_equals_c();
        test_save_load();
        test_layer_kinds();
        test_chain_of_layers();
        test_column_names();
        test_precision();
        test_conditional();
        test_variational();
        test_mixture_base();
    } catch (const std::exception &e) {
        ++g_failures;
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    }
    std::printf("test_cpp: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures > 100 ? 100 : g_failures;
}

#endif
