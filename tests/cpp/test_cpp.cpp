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
    return std::memcmp(a, b, n * sizeof(float)) == 0;
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
    EXPECT_ERROR(NVP_EDIM, chain.get_params(buf.data(), buf.size()));
    EXPECT_ERROR(NVP_EDIM, adam.step(three, buf));

    // The parameter average: off until set, restarted by set_average.
    EXPECT_ERROR(NVP_EINVAL, adam.average());
    EXPECT_ERROR(NVP_EDIM, adam.set_average(0.9f, three));
    const std::vector<float> start = chain.get_params();
    adam.set_average(0.9f, start);
    CHECK(adam.average_decay() == 0.9f && adam.average() == start);
    EXPECT_ERROR(NVP_EINVAL, adam.set_average(1.0f, start));
    CHECK(adam.average_decay() == 0.9f);
    adam.set_average(0.0f, nullptr, 0);
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
    EXPECT_ERROR(NVP_EBUFSIZE, chain.save_buffer(tiny.data(), tiny.size()));

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
        nvp::CouplingView l = chain.layer(k, &off);
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
    adam.step(chain.params(), grad.data(), grad.size());
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
    CHECK(chain.layer(0).log_scale_clamp() == 2.5f);

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
    CHECK(c1.layer(0).log_scale_clamp() == 3.0f);
    nvp::Chain c2 = nvp::Chain::load(path);
    CHECK(same_bits(c2.log_prob(data), chain.log_prob(data)));
    // A buffer without a scaler resets the optional.
    CHECK(s.has_value());
    nvp::Chain c3 = nvp::Chain::load(chain.save_buffer(), s);
    CHECK(!s.has_value() && same_bits(c3.get_params(), chain.get_params()));
    const nvp::Bytes b = chain.save_buffer(&scaler);
    nvp::Chain c4 = nvp::Chain::load_buffer(b.data(), b.size(), s);
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
    } catch (const std::exception &e) {
        ++g_failures;
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    }
    std::printf("test_cpp: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures > 100 ? 100 : g_failures;
}

#endif
