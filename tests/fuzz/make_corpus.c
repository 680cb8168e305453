/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora of the fuzz harnesses:
 *
 *   make_corpus LOAD_DIR API_DIR
 *
 * LOAD_DIR (fuzz_load): a few valid model files and training states made
 * with the library, and variants of them: truncated, with a flipped bit
 * (checksum mismatch), and with one field made invalid but every checksum
 * recomputed, so that each seed reaches a different check of the loaders.
 * API_DIR (fuzz_api): hand-made call sequences and a few pseudo-random
 * byte strings.
 *
 * Uses only the public API (and its own CRC-32).  The files are small:
 * the whole corpus stays far below 200 KB. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

static const char *load_dir, *api_dir;
static size_t n_written, bytes_written;

#define OK(call)                                                           \
    do {                                                                   \
        const int rc_ = (call);                                            \
        if (rc_ != NVP_OK) {                                               \
            fprintf(stderr, "make_corpus: %s failed: %d (%s): %s\n", #call, \
                    rc_, nvp_strerror(rc_), nvp_errmsg());                 \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static void write_file(const char *dir, const char *name,
                       const unsigned char *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        exit(1);
    }
    n_written++;
    bytes_written += size;
}

/* ------------------------------------------------------ file surgery */
typedef struct section {
    uint32_t tag;
    unsigned char p[4096];
    size_t n;
} section;

typedef struct file {
    unsigned char head[20]; /* magic, version, kind, count */
    section s[8];
    size_t ns;
    unsigned char tail[8]; /* bytes appended after the last section */
    size_t ntail;
} file;

static void parse(const unsigned char *d, size_t size, file *f)
{
    memset(f, 0, sizeof *f);
    if (size < 24) {
        fprintf(stderr, "make_corpus: short file\n");
        exit(1);
    }
    memcpy(f->head, d, 20);
    size_t pos = 24;
    while (pos < size) {
        section *s = &f->s[f->ns++];
        s->tag = fz_get_u32(d + pos);
        s->n = (size_t)fz_get_u64(d + pos + 4);
        if (s->n > sizeof s->p) {
            fprintf(stderr, "make_corpus: section too large\n");
            exit(1);
        }
        memcpy(s->p, d + pos + 12, s->n);
        pos += 16 + s->n;
    }
}

/* Serialises with correct checksums; the header's count is left as is. */
static unsigned char *build(const file *f, size_t *size)
{
    size_t n = 24 + f->ntail;
    for (size_t i = 0; i < f->ns; i++)
        n += 16 + f->s[i].n;
    unsigned char *d = malloc(n);
    memcpy(d, f->head, 20);
    fz_put_u32(d + 20, fz_crc32(d, 20));
    size_t pos = 24;
    for (size_t i = 0; i < f->ns; i++) {
        fz_put_u32(d + pos, f->s[i].tag);
        fz_put_u64(d + pos + 4, f->s[i].n);
        memcpy(d + pos + 12, f->s[i].p, f->s[i].n);
        fz_put_u32(d + pos + 12 + f->s[i].n,
                   fz_crc32(d + pos, 12 + f->s[i].n));
        pos += 16 + f->s[i].n;
    }
    memcpy(d + pos, f->tail, f->ntail);
    *size = n;
    return d;
}

static void emit(const char *name, const file *f)
{
    size_t n;
    unsigned char *d = build(f, &n);
    write_file(load_dir, name, d, n);
    free(d);
}

static void set_count(file *f, uint32_t n) { fz_put_u32(f->head + 16, n); }

static section *find(file *f, uint32_t tag)
{
    for (size_t i = 0; i < f->ns; i++)
        if (f->s[i].tag == tag)
            return &f->s[i];
    return NULL;
}

static void put_f32(unsigned char *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    fz_put_u32(p, u);
}

#define TAG_ARCH FZ_TAG('A', 'R', 'C', 'H')
#define TAG_PARM FZ_TAG('P', 'A', 'R', 'M')
#define TAG_SCAL FZ_TAG('S', 'C', 'A', 'L')
#define TAG_ADAM FZ_TAG('A', 'D', 'A', 'M')
#define TAG_RNG FZ_TAG('R', 'N', 'G', ' ')
#define TAG_AVG FZ_TAG('A', 'V', 'G', ' ')

/* --------------------------------------------------------- the models */
static unsigned char *save_chain(const nvp_chain *c, const nvp_scaler *s,
                                 size_t *n)
{
    OK(nvp_chain_save_buffer(c, s, 0, NULL, n));
    unsigned char *b = malloc(*n);
    OK(nvp_chain_save_buffer(c, s, *n, b, n));
    return b;
}

static unsigned char *save_state(const nvp_adam *o, const nvp_rng *g,
                                 size_t *n)
{
    OK(nvp_adam_save_buffer(o, g, 0, NULL, n));
    unsigned char *b = malloc(*n);
    OK(nvp_adam_save_buffer(o, g, *n, b, n));
    return b;
}

/* Truncations and a flipped bit of a valid file. */
static void damaged(const char *stem, const unsigned char *d, size_t n)
{
    const size_t cuts[] = {8, 23, 24, 36, n / 2, n - 5, n - 1};
    char name[128];
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= n)
            continue;
        snprintf(name, sizeof name, "%s_cut%zu", stem, cuts[i]);
        write_file(load_dir, name, d, cuts[i]);
    }
    unsigned char *x = malloc(n);
    memcpy(x, d, n);
    x[n / 2] ^= 0x10;
    snprintf(name, sizeof name, "%s_bitflip", stem);
    write_file(load_dir, name, x, n);
    free(x);
}

/* Model variants with one field invalid and every checksum right.  The
 * base model has 2 layers of dim 2 and one hidden layer: ARCH is dim,
 * base kind, layers, then per layer n_hidden, width, clamp, 2 mask bytes. */
static void model_variants(const unsigned char *d, size_t n,
                           const unsigned char *ds, size_t ns)
{
    file base, f;
    parse(d, n, &base);
#define VARIANT(name, edit)                                                \
    do {                                                                   \
        f = base;                                                          \
        section *arch = find(&f, TAG_ARCH), *parm = find(&f, TAG_PARM);     \
        (void)arch;                                                        \
        (void)parm;                                                        \
        edit;                                                              \
        emit(name, &f);                                                    \
    } while (0)
    VARIANT("mv_version2", fz_put_u32(f.head + 8, 2));
    VARIANT("mv_kind_training", fz_put_u32(f.head + 12, 2));
    VARIANT("mv_count0", set_count(&f, 0));
    VARIANT("mv_count9", set_count(&f, 9));
    VARIANT("mv_count3", set_count(&f, 3));
    VARIANT("mv_dim1", fz_put_u32(arch->p, 1));
    VARIANT("mv_dim_huge", fz_put_u32(arch->p, 65537));
    VARIANT("mv_base_kind2", fz_put_u32(arch->p + 4, 2));
    VARIANT("mv_layers0", fz_put_u32(arch->p + 8, 0));
    VARIANT("mv_layers3", fz_put_u32(arch->p + 8, 3));
    VARIANT("mv_layers4097", fz_put_u32(arch->p + 8, 4097));
    VARIANT("mv_hidden65", fz_put_u32(arch->p + 12, 65));
    VARIANT("mv_hidden0", fz_put_u32(arch->p + 12, 0));
    VARIANT("mv_width0", fz_put_u32(arch->p + 16, 0));
    VARIANT("mv_width_huge", fz_put_u32(arch->p + 16, 65537));
    VARIANT("mv_width_big", fz_put_u32(arch->p + 16, 65536));
    VARIANT("mv_clamp_nan", put_f32(arch->p + 20, NAN));
    VARIANT("mv_clamp_neg", put_f32(arch->p + 20, -1.0f));
    VARIANT("mv_clamp_2", put_f32(arch->p + 20, 2.0f));
    VARIANT("mv_mask2", arch->p[24] = 2);
    VARIANT("mv_mask_ones", arch->p[24] = arch->p[25] = 1);
    VARIANT("mv_arch_extra", arch->p[arch->n++] = 0);
    VARIANT("mv_arch_short", arch->n -= 1);
    VARIANT("mv_parm_count", fz_put_u64(parm->p, fz_get_u64(parm->p) + 1));
    VARIANT("mv_parm_count_huge", fz_put_u64(parm->p, UINT64_MAX));
    VARIANT("mv_parm_nan", put_f32(parm->p + 8, NAN));
    VARIANT("mv_parm_inf", put_f32(parm->p + parm->n - 4, INFINITY));
    VARIANT("mv_parm_short", parm->n -= 4);
    VARIANT("mv_unknown_tag", parm->tag = FZ_TAG('X', 'T', 'R', 'A'));
    VARIANT("mv_repeat_arch", (f.s[1] = f.s[0]));
    VARIANT("mv_missing_parm", (f.ns = 1, set_count(&f, 1)));
    VARIANT("mv_reordered", (f.s[0] = base.s[1], f.s[1] = base.s[0]));
    VARIANT("mv_trailing", (f.tail[0] = 0xAB, f.ntail = 3));
    VARIANT("mv_bad_magic", f.head[0] = (unsigned char)'X');

    /* The same with a scaler section. */
    parse(ds, ns, &base);
    VARIANT("mv_scal_dim", fz_put_u32(find(&f, TAG_SCAL)->p, 3));
    VARIANT("mv_scal_sd0", put_f32(find(&f, TAG_SCAL)->p + 4 + 8, 0.0f));
    VARIANT("mv_scal_sd_neg", put_f32(find(&f, TAG_SCAL)->p + 4 + 8, -2.0f));
    VARIANT("mv_scal_mean_nan", put_f32(find(&f, TAG_SCAL)->p + 4, NAN));
    VARIANT("mv_scal_sd_nan", put_f32(find(&f, TAG_SCAL)->p + 4 + 8, NAN));
    VARIANT("mv_scal_mean_inf", put_f32(find(&f, TAG_SCAL)->p + 4, -INFINITY));
    VARIANT("mv_scal_short", find(&f, TAG_SCAL)->n -= 4);
    VARIANT("mv_scal_long", (put_f32(find(&f, TAG_SCAL)->p +
                                         find(&f, TAG_SCAL)->n, 1.0f),
                             find(&f, TAG_SCAL)->n += 4));
    VARIANT("mv_scal_first",
            (f.s[0] = base.s[2], f.s[1] = base.s[0], f.s[2] = base.s[1]));
    VARIANT("mv_scal_twice", (f.s[3] = base.s[2], f.ns = 4, set_count(&f, 4)));
#undef VARIANT
}

/* Training-state variants.  ADAM: u64 n, f32 lr, b1, b2, eps, u64 t,
 * m[n], v[n]; RNG: u64 s[4], u32 has_spare, u64 spare. */
static void state_variants(const unsigned char *d, size_t n)
{
    file base, f;
    parse(d, n, &base);
#define VARIANT(name, edit)                                                \
    do {                                                                   \
        f = base;                                                          \
        section *adam = find(&f, TAG_ADAM), *rng = find(&f, TAG_RNG);       \
        (void)adam;                                                        \
        (void)rng;                                                         \
        edit;                                                              \
        emit(name, &f);                                                    \
    } while (0)
    const size_t np = (size_t)fz_get_u64(base.s[0].p);
    VARIANT("sv_kind_model", fz_put_u32(f.head + 12, 1));
    VARIANT("sv_n0", fz_put_u64(adam->p, 0));
    VARIANT("sv_n_plus1", fz_put_u64(adam->p, np + 1));
    VARIANT("sv_n_huge", fz_put_u64(adam->p, (uint64_t)1 << 62));
    VARIANT("sv_lr0", put_f32(adam->p + 8, 0.0f));
    VARIANT("sv_lr_inf", put_f32(adam->p + 8, INFINITY));
    VARIANT("sv_b1_one", put_f32(adam->p + 12, 1.0f));
    VARIANT("sv_b2_nan", put_f32(adam->p + 16, NAN));
    VARIANT("sv_eps0", put_f32(adam->p + 20, 0.0f));
    /* Step counts at the top: every one loads, and a step saturates the
     * count at 2^64 - 1, which must save and load again. */
    VARIANT("sv_t_max", fz_put_u64(adam->p + 24, UINT64_MAX));
    VARIANT("sv_t_max_minus1", fz_put_u64(adam->p + 24, UINT64_MAX - 1));
    VARIANT("sv_t_max_minus2", fz_put_u64(adam->p + 24, UINT64_MAX - 2));
    VARIANT("sv_m_nan", put_f32(adam->p + 32, NAN));
    VARIANT("sv_v_neg", put_f32(adam->p + 32 + 4 * np, -1.0f));
    VARIANT("sv_adam_short", adam->n -= 4);
    VARIANT("sv_rng_zero", memset(rng->p, 0, 32));
    VARIANT("sv_rng_spare2", fz_put_u32(rng->p + 32, 2));
    VARIANT("sv_rng_spare_inf", fz_put_u64(rng->p + 36, 0x7ff0000000000000ull));
    VARIANT("sv_rng_short", rng->n -= 1);
    VARIANT("sv_rng_long", rng->p[rng->n++] = 0);
    VARIANT("sv_rng_only", (f.s[0] = base.s[1], f.ns = 1, set_count(&f, 1)));
    VARIANT("sv_reordered", (f.s[0] = base.s[1], f.s[1] = base.s[0]));
    VARIANT("sv_unknown_tag", rng->tag = FZ_TAG('R', 'N', 'G', '2'));
#undef VARIANT
}

/* Variants of a training state whose third section is AVG. */
static void avg_variants(const unsigned char *d, size_t n)
{
    file base, f;
    parse(d, n, &base);
#define VARIANT(name, edit)                                                \
    do {                                                                   \
        f = base;                                                          \
        section *avg = find(&f, TAG_AVG);                                  \
        (void)avg;                                                         \
        edit;                                                              \
        emit(name, &f);                                                    \
    } while (0)
    VARIANT("sv_avg_decay0", put_f32(avg->p, 0.0f));
    VARIANT("sv_avg_decay1", put_f32(avg->p, 1.0f));
    VARIANT("sv_avg_decay_nan", put_f32(avg->p, NAN));
    VARIANT("sv_avg_inf", put_f32(avg->p + 8, INFINITY));
    VARIANT("sv_avg_short", avg->n -= 4);
    VARIANT("sv_avg_long", (put_f32(avg->p + avg->n, 1.0f), avg->n += 4));
    VARIANT("sv_avg_twice", (f.s[3] = base.s[2], f.ns = 4, set_count(&f, 4)));
    VARIANT("sv_avg_only", (f.s[0] = base.s[2], f.ns = 1, set_count(&f, 1)));
#undef VARIANT
}

/* Variants of a training state whose last section is CLIP (f32 limit). */
static void clip_variants(const unsigned char *d, size_t n)
{
    file base, f;
    parse(d, n, &base);
#define VARIANT(name, edit)                                                \
    do {                                                                   \
        f = base;                                                          \
        section *clip = &f.s[f.ns - 1];                                    \
        (void)clip;                                                        \
        edit;                                                              \
        emit(name, &f);                                                    \
    } while (0)
    VARIANT("sv_clip_zero", put_f32(clip->p, 0.0f));
    VARIANT("sv_clip_negative", put_f32(clip->p, -1.0f));
    VARIANT("sv_clip_nan", put_f32(clip->p, NAN));
    VARIANT("sv_clip_inf", put_f32(clip->p, INFINITY));
    VARIANT("sv_clip_empty", clip->n = 0);
    VARIANT("sv_clip_long", (put_f32(clip->p + 4, 1.0f), clip->n = 8));
    VARIANT("sv_clip_twice", (f.s[f.ns] = base.s[base.ns - 1], f.ns++,
                              set_count(&f, (uint32_t)f.ns)));
#undef VARIANT
}

static void make_load_corpus(void)
{
    nvp_rng *rng;
    OK(nvp_rng_create(&rng, 20240611, NULL));

    /* 1. dim 2, two alternating layers, one hidden layer of 4. */
    const size_t h4[] = {4};
    nvp_chain *c1;
    OK(nvp_chain_create_alternating(&c1, 2, 2, 1, h4, 0, rng, NULL));
    size_t n1;
    unsigned char *m1 = save_chain(c1, NULL, &n1);
    write_file(load_dir, "m_alt2", m1, n1);

    /* 2. dim 3, custom masks, two hidden layers, a clamp, a scaler. */
    const unsigned char masks[3][3] = {{1, 0, 1}, {0, 1, 0}, {1, 1, 0}};
    const size_t h32[] = {3, 2};
    nvp_coupling *ls[3];
    for (int k = 0; k < 3; k++)
        OK(nvp_coupling_create(&ls[k], 3, masks[k], 2, h32, 0, rng, NULL));
    OK(nvp_coupling_set_log_scale_clamp(ls[1], 2.5f));
    nvp_base *b3;
    OK(nvp_base_create_normal(&b3, 3, NULL));
    nvp_chain *c2;
    OK(nvp_chain_create(&c2, b3, 3, ls, NULL));
    nvp_scaler *s3;
    OK(nvp_scaler_create(&s3, 3, NULL));
    const float mean[3] = {0.5f, -1.0f, 2.0f}, sd[3] = {1.0f, 2.0f, 0.5f};
    OK(nvp_scaler_set(s3, 3, mean, sd));
    size_t n2;
    unsigned char *m2 = save_chain(c2, s3, &n2);
    write_file(load_dir, "m_masks_scaler", m2, n2);

    /* 3. dim 4, one affine layer (no hidden layer), zero output init. */
    const size_t none[1] = {0};
    nvp_chain *c3;
    OK(nvp_chain_create_alternating(&c3, 4, 1, 0, none, NVP_INIT_ZERO_OUTPUT,
                                    rng, NULL));
    OK(nvp_chain_set_log_scale_clamp(c3, 1.0f));
    size_t n3;
    unsigned char *m3 = save_chain(c3, NULL, &n3);
    write_file(load_dir, "m_affine", m3, n3);

    /* 4. dim 5, five hidden layers of width 1. */
    const size_t h1[] = {1, 1, 1, 1, 1};
    nvp_chain *c4;
    OK(nvp_chain_create_alternating(&c4, 5, 2, 5, h1, 0, rng, NULL));
    size_t n4;
    unsigned char *m4 = save_chain(c4, NULL, &n4);
    write_file(load_dir, "m_deep", m4, n4);

    /* 4b. every layer kind (format version 2, STCK): ActNorm, linear, a
     * permutation and a coupling over 3 dimensions, with a scaler. */
    {
        nvp_base *bk;
        OK(nvp_base_create_normal(&bk, 3, NULL));
        nvp_layer *lk[4];
        OK(nvp_layer_create_actnorm(&lk[0], 3, NULL));
        OK(nvp_layer_create_linear(&lk[1], 3, NULL));
        OK(nvp_layer_create_random_permutation(&lk[2], 3, rng, NULL));
        nvp_coupling *ck;
        const size_t hk[1] = {3};
        OK(nvp_coupling_create_half(&ck, 3, 1, 1, hk, 0, rng, NULL));
        lk[3] = nvp_coupling_as_layer(ck);
        nvp_chain *c_kinds;
        OK(nvp_chain_create_from_layers(&c_kinds, bk, 4, lk, NULL));
        const float kdata[3 * 4] = {1, 2, 0.5f, -1, 0, 2, 3, 1, -2, 0.5f, -0.5f, 1};
        OK(nvp_chain_init_from_data(c_kinds, 4, kdata));
        nvp_scaler *sk;
        OK(nvp_scaler_create(&sk, 3, NULL));
        OK(nvp_scaler_fit(sk, 4, kdata));
        size_t nk;
        unsigned char *mk = save_chain(c_kinds, sk, &nk);
        write_file(load_dir, "m_kinds_scaler", mk, nk);
        free(mk);
        nvp_scaler_free(sk);
        nvp_chain_free(c_kinds);
    }

    /* 4b2. a mixture base (format version 2, STCK and BASE): two
     * components over 3 dimensions under a linear layer and a coupling. */
    {
        const float w[2] = {0.4f, 0.6f};
        const float mu[6] = {1, 0, -1, -1, 0.5f, 0};
        const float cov[18] = {1, 0.2f, 0, 0.2f, 1, 0.1f, 0, 0.1f, 0.5f,
                               2, 0, 0.3f, 0, 1, 0, 0.3f, 0, 1};
        nvp_base *bm;
        OK(nvp_base_create_mixture(&bm, 3, 2, w, mu, cov, NULL));
        nvp_layer *lm[2];
        OK(nvp_layer_create_linear(&lm[0], 3, NULL));
        nvp_coupling *cm;
        const size_t hm[1] = {3};
        nvp_rng *rm; /* its own: the other seeds' draws stay as they were */
        OK(nvp_rng_create(&rm, 20261207, NULL));
        OK(nvp_coupling_create_half(&cm, 3, 1, 1, hm, 0, rm, NULL));
        nvp_rng_free(rm);
        lm[1] = nvp_coupling_as_layer(cm);
        nvp_chain *c_mix;
        OK(nvp_chain_create_from_layers(&c_mix, bm, 2, lm, NULL));
        size_t nm;
        unsigned char *mm = save_chain(c_mix, NULL, &nm);
        write_file(load_dir, "m_mixture_base", mm, nm);
        damaged("m_mixture_base", mm, nm);
        free(mm);
        nvp_chain_free(c_mix);
    }

    /* 4c. a conditional model (format version 2): dim 2 reading 2 context
     * values per row, trained a few steps, with column names and a scaler
     * of dim + C axes naming the context's columns too.  Its own
     * generator, so that the seeds after it stay as they were. */
    {
        nvp_rng *rc_rng;
        OK(nvp_rng_create(&rc_rng, 99, NULL));
        const size_t hc[1] = {5};
        nvp_chain *cc;
        OK(nvp_chain_create_conditional(&cc, 2, 2, 2, 1, hc, 0, rc_rng, NULL));
        OK(nvp_chain_set_threads(cc, 1));
        enum { NC = 32 };
        float yc[2 * NC], ctx[2 * NC];
        OK(nvp_rng_normal(rc_rng, 2 * NC, yc));
        OK(nvp_rng_normal(rc_rng, 2 * NC, ctx));
        nvp_adam *oc;
        OK(nvp_adam_create(&oc, nvp_chain_num_params(cc), NULL));
        for (int i = 0; i < 3; i++)
            OK(nvp_chain_train_step_given(cc, oc, rc_rng, NC, yc, ctx, 8,
                                          NULL));
        const char *const cn[2] = {"y0", "y1"};
        OK(nvp_chain_set_column_names(cc, 2, cn));
        nvp_scaler *sc;
        OK(nvp_scaler_create(&sc, 4, NULL));
        const float mc[4] = {0.5f, -1, 0, 2}, sdc[4] = {1, 2, 0.5f, 3};
        OK(nvp_scaler_set(sc, 4, mc, sdc));
        const char *const sn[4] = {"y0", "y1", "temp", "day"};
        OK(nvp_scaler_set_column_names(sc, 4, sn));
        size_t ncm;
        unsigned char *mcm = save_chain(cc, sc, &ncm);
        write_file(load_dir, "m_cond_scaler_names", mcm, ncm);
        free(mcm);
        unsigned char *mcp = save_chain(cc, NULL, &ncm);
        write_file(load_dir, "m_cond", mcp, ncm);
        free(mcp);
        nvp_scaler_free(sc);
        nvp_adam_free(oc);
        nvp_chain_free(cc);

        /* 4d. an unconditional chain of two sigmoid-form couplings
         * (nflows' affine form), dim 3. */
        nvp_coupling *sl[2];
        const unsigned char sm[2][3] = {{1, 0, 0}, {0, 1, 1}};
        const size_t hs[1] = {4};
        for (int k = 0; k < 2; k++) {
            OK(nvp_coupling_create(&sl[k], 3, sm[k], 1, hs, 0, rc_rng, NULL));
            OK(nvp_coupling_set_affine_form(sl[k], NVP_AFFINE_SIGMOID));
        }
        nvp_base *bs;
        OK(nvp_base_create_normal(&bs, 3, NULL));
        nvp_chain *cs;
        OK(nvp_chain_create(&cs, bs, 2, sl, NULL));
        size_t nsg;
        unsigned char *msg = save_chain(cs, NULL, &nsg);
        write_file(load_dir, "m_sigmoid", msg, nsg);
        free(msg);
        nvp_chain_free(cs);
        nvp_rng_free(rc_rng);
    }

    /* 5. two moons, trained a few steps, with its scaler; and the
     * training state (optimizer and generator) that goes with it. */
    enum { N = 256 };
    float xy[2 * N];
    OK(nvp_two_moons(rng, N, 0.05f, xy, NULL));
    nvp_scaler *s5;
    OK(nvp_scaler_create(&s5, 2, NULL));
    OK(nvp_scaler_fit(s5, N, xy));
    OK(nvp_scaler_transform(s5, N, xy, xy));
    const size_t h8[] = {8, 8};
    nvp_chain *c5;
    OK(nvp_chain_create_alternating(&c5, 2, 2, 2, h8, 0, rng, NULL));
    OK(nvp_chain_set_threads(c5, 1));
    nvp_adam *o5;
    OK(nvp_adam_create(&o5, nvp_chain_num_params(c5), NULL));
    OK(nvp_adam_set_lr(o5, 0.01f));
    for (int i = 0; i < 5; i++)
        OK(nvp_chain_train_step(c5, o5, rng, N, xy, 32, NULL));
    size_t n5;
    unsigned char *m5 = save_chain(c5, s5, &n5);
    write_file(load_dir, "m_trained_scaler", m5, n5);
    size_t nt1;
    unsigned char *t1 = save_state(o5, rng, &nt1);
    write_file(load_dir, "t_adam_rng", t1, nt1);

    /* 6. a fresh small optimizer without a generator; one whose generator
     * holds a spare normal. */
    nvp_adam *o6;
    OK(nvp_adam_create(&o6, 7, NULL));
    OK(nvp_adam_set_betas(o6, 0.5f, 0.75f));
    OK(nvp_adam_set_eps(o6, 1e-4f));
    size_t nt2;
    unsigned char *t2 = save_state(o6, NULL, &nt2);
    write_file(load_dir, "t_adam", t2, nt2);
    float z;
    OK(nvp_rng_normal(rng, 1, &z));
    size_t nt3;
    unsigned char *t3 = save_state(o6, rng, &nt3);
    write_file(load_dir, "t_adam_spare", t3, nt3);

    /* 7. the same optimizer with a parameter average (AVG: f32 decay,
     * f32 avg[n]), and variants of that section. */
    const float start7[7] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f, -0.25f, 1.0f};
    OK(nvp_adam_set_average(o6, 0.9f, 7, start7));
    size_t nt4;
    unsigned char *t4 = save_state(o6, rng, &nt4);
    write_file(load_dir, "t_adam_avg", t4, nt4);
    avg_variants(t4, nt4);

    /* 8. the same with gradient-norm clipping (CLIP: f32 limit last). */
    OK(nvp_adam_set_clip_norm(o6, 2.5f));
    size_t nt5;
    unsigned char *t5 = save_state(o6, rng, &nt5);
    write_file(load_dir, "t_adam_clip", t5, nt5);

    /* 8b. and with weight decay (WDEC: f32, after CLIP). */
    {
        nvp_adam *ow;
        OK(nvp_adam_create(&ow, 3, NULL));
        OK(nvp_adam_set_weight_decay(ow, 0.01f));
        OK(nvp_adam_set_clip_norm(ow, 1.0f));
        size_t ntw;
        unsigned char *tw = save_state(ow, NULL, &ntw);
        write_file(load_dir, "t_adam_wdec", tw, ntw);
        free(tw);
        nvp_adam_free(ow);
    }
    clip_variants(t5, nt5);

    damaged("m_alt2", m1, n1);
    damaged("m_masks_scaler", m2, n2);
    damaged("t_adam_rng", t1, nt1);
    model_variants(m1, n1, m5, n5);
    state_variants(t3, nt3);
    /* Nearly nothing. */
    write_file(load_dir, "empty", (const unsigned char *)"", 0);
    write_file(load_dir, "magic_only", (const unsigned char *)"NVPFLOW", 8);

    free(m1);
    free(m2);
    free(m3);
    free(m4);
    free(m5);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
    nvp_chain_free(c1);
    nvp_chain_free(c2);
    nvp_chain_free(c3);
    nvp_chain_free(c4);
    nvp_chain_free(c5);
    nvp_scaler_free(s3);
    nvp_scaler_free(s5);
    nvp_adam_free(o5);
    nvp_adam_free(o6);
    nvp_rng_free(rng);
}

/* ---------------------------------------------------- api programs */
/* Operation numbers of fuzz_api.c's table. */
enum {
    OP_RNG, OP_BASE, OP_LAYER, OP_CHAIN_CREATE, OP_EVAL, OP_EVAL2,
    OP_PARAMS, OP_SETTINGS, OP_TRAIN, OP_TRAIN2, OP_ADAM, OP_SCALER,
    OP_SAVE_CHAIN, OP_SAVE_ADAM, OP_MISC
};

static void api(const char *name, const unsigned char *p, size_t n)
{
    write_file(api_dir, name, p, n);
}

static void make_api_corpus(void)
{
    /* Optimizer for chain 0, a few training steps, save and load of the
     * model and the training state, then a 517-row log_prob rerun with 2
     * threads. */
    static const unsigned char train[] = {
        OP_ADAM, 0, 0, 0, 0, 0, 1,
        OP_TRAIN, 0, 0, 0, 8, 5, 0, 7, 1, 1,
        OP_TRAIN, 0, 0, 0, 8, 5, 0, 8, 1, 1,
        OP_TRAIN, 0, 0, 0, 8, 5, 0, 9, 1, 1,
        OP_SAVE_CHAIN, 0, 0, 2, 0, 1, 0, 3, 0,
        OP_SAVE_ADAM, 0, 0, 1, 0, 1, 0,
        OP_EVAL, 0, 0, 0, 1, 18, 5, 0, 9, 5, 0, 1,
    };
    api("a_train_save", train, sizeof train);

    /* A dim-5 chain of 3 custom-mask layers (widths 4, 5, 6) through the
     * counting allocator, a 266-row nll_grad rerun with 3 threads, a
     * clamp, a forward in place. */
    static const unsigned char custom[] = {
        OP_CHAIN_CREATE, 1, 0, 3, 3, 5, 3, 4, 5, 0, 0, 10, 1,
        1, 3, 1, 0, 1, 0, 0,
        1, 3, 0, 1, 0, 1, 1,
        1, 3, 1, 1, 0, 0, 1,
        5, 1, 1,
        OP_EVAL2, 1, 5, 0, 0, 17, 10, 1, 4, 0, 3, 0, 8, 4, 0, 2,
        OP_SETTINGS, 1, 1, 12, 32,
        OP_EVAL, 1, 1, 0, 0, 3, 0, 5, 7, 1, 0, 1,
    };
    api("a_custom_chain", custom, sizeof custom);

    /* A scaler fitted and saved with the model, two moons, a standalone
     * layer and its inverse backward. */
    static const unsigned char scaler[] = {
        OP_SCALER, 0, 0, 15, 0,
        OP_SCALER, 0, 2, 7, 0, 11,
        OP_SAVE_CHAIN, 0, 2, 3, 0, 1, 0, 1, 1, 1,
        OP_MISC, 0, 0, 7, 7, 3,
        OP_LAYER, 0, 0, 13, 3, 1, 0, 0, 1, 1, 6, 7, 1, 1, 0, 0,
        OP_LAYER, 0, 5, 1, 4, 0, 2, 0, 3, 8, 8, 8, 8, 8, 9, 0,
    };
    api("a_scaler_layer", scaler, sizeof scaler);

    /* The 0.5.0 calls (op bytes from 208: 208/209 gradients and reverse
     * KL, 210 column names and affine forms, 211 chain creation): a
     * conditional chain (dim 2, context 2, two layers of width 4) in slot
     * 1, then evaluations, training, gradients, names and a save. */
    enum { OP_GRAD = 208, OP_NAMES = 210, OP_CREATE_NEW = 211 };
#define COND_CHAIN OP_CREATE_NEW, 1, 7, 2, 5, 2, 6, 3, 0, 0, 0, 1
    static const unsigned char cond_eval[] = {
        COND_CHAIN,
        OP_EVAL, 1, 0, 0, 3, 6, 0, 5, 3, 1, 7, 9, 0, 0,
        OP_EVAL, 1, 1, 0, 3, 6, 0, 5, 3, 5, 7, 2, 9, 1, 0, 0,
        OP_EVAL, 1, 3, 0, 3, 6, 2, 0, 9, 0,
        OP_EVAL, 1, 0, 0, 3, 6, 0, 5, 1, 9, 0,
        OP_EVAL, 1, 5, 0, 3, 6, 0, 5, 3, 0, 7, 9, 0,
    };
    api("a_cond_eval", cond_eval, sizeof cond_eval);
    static const unsigned char cond_grad[] = {
        COND_CHAIN,
        OP_ADAM, 0, 0, 0, 1, 0, 1,
        OP_GRAD, 1, 0, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1,
        OP_GRAD, 1, 1, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 2,
        OP_GRAD, 1, 2, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1, 0,
        OP_GRAD, 1, 3, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1, 0, 5,
        OP_GRAD, 1, 3, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1, 1, 5,
        OP_GRAD, 1, 4, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1, 0, 5,
        OP_GRAD, 1, 4, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1, 2, 5,
        OP_GRAD, 1, 5, 0, 0, 6, 3, 0, 1, 0, 2, 0, 3, 0, 4, 9, 1,
        OP_TRAIN, 1, 0, 0, 6, 6, 0, 3, 0, 3, 0, 5, 1, 1, 2, 3, 4, 5, 6, 7, 8,
    };
    api("a_cond_grad", cond_grad, sizeof cond_grad);
    static const unsigned char cond_save[] = {
        COND_CHAIN,
        OP_SCALER, 0, 0, 5, 0,
        OP_NAMES, 1, 0, 0, 0, 1, 2,
        OP_NAMES, 0, 1, 0, 0, 1, 2, 3, 4, 5,
        OP_NAMES, 0, 3, 2,
        OP_SAVE_CHAIN, 1, 2, 3, 0, 1, 0, 1, 1, 1, 0, 1, 2,
        OP_SAVE_CHAIN, 1, 0, 3, 0, 1, 0, 1, 1, 1, 0, 1, 2,
        OP_CREATE_NEW, 0, 6, 2, 3, 2, 6, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 48, 0,
        1, 0, 1, 48, 0, 0, 1,
        OP_SAVE_CHAIN, 0, 0, 3, 0, 1, 0, 1,
    };
    api("a_cond_save_names", cond_save, sizeof cond_save);

    /* Pseudo-random programs of a few lengths. */
    uint64_t s = 12345;
    for (int k = 0; k < 6; k++) {
        unsigned char buf[512];
        const size_t n = (size_t)32 << (k % 4);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = (unsigned char)(s >> 56);
        }
        char name[32];
        snprintf(name, sizeof name, "a_random%d", k);
        api(name, buf, n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_corpus LOAD_DIR API_DIR\n");
        return 2;
    }
    load_dir = argv[1];
    api_dir = argv[2];
    make_load_corpus();
    const size_t n_load = n_written, b_load = bytes_written;
    make_api_corpus();
    printf("make_corpus: %zu load seeds (%zu bytes) in %s, %zu api seeds "
           "(%zu bytes) in %s\n",
           n_load, b_load, load_dir, n_written - n_load,
           bytes_written - b_load, api_dir);
    return 0;
}
