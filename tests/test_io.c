/* SPDX-License-Identifier: MIT */
/* Saving and loading: models (chain + scaler) and training states (Adam +
 * rng) through buffers and files.  Round trips are bitwise; every
 * truncation and every corrupted byte is refused; a future format version
 * is NVP_EVERSION; an interrupted and resumed training run equals an
 * uninterrupted one. */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

/* CRC-32 (IEEE, reflected 0xEDB88320), bit by bit: an independent check
 * of the format's checksums. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Entries in a directory other than "." and "..": what a save leaves. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return entries;
}

/* A chain with different masks, conditioners and clamps per layer, and a
 * fitted scaler. */
static nvp_chain *make_model(nvp_scaler **scaler)
{
    const size_t dim = 3;
    const unsigned char masks[3][3] = {{1, 0, 0}, {0, 1, 1}, {0, 1, 0}};
    const size_t hid[3][2] = {{5, 4}, {7, 0}, {3, 6}};
    const size_t nh[3] = {2, 1, 2};
    const float clamps[3] = {0.0f, 0.5f, 2.0f};
    nvp_rng *r = t_rng(6000);
    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, dim, NULL));
    nvp_coupling *layers[3];
    for (int k = 0; k < 3; k++) {
        T_OK(nvp_coupling_create(&layers[k], dim, masks[k], nh[k], hid[k], 0, r, NULL));
        T_OK(nvp_coupling_set_log_scale_clamp(layers[k], clamps[k]));
    }
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create(&c, b, 3, layers, NULL));
    if (scaler) {
        float x[300];
        t_prng p;
        t_prng_seed(&p, 6001);
        t_fill_normal(&p, 300, x, 3.0);
        T_OK(nvp_scaler_create(scaler, dim, NULL));
        T_OK(nvp_scaler_fit(*scaler, 100, x));
    }
    nvp_rng_free(r);
    return c;
}

static unsigned char *save_model(const nvp_chain *c, const nvp_scaler *s, size_t *size)
{
    T_OK(nvp_chain_save_buffer(c, s, 0, NULL, size));
    ck_assert_uint_gt(*size, 24);
    unsigned char *buf = t_xmalloc(*size);
    size_t again = 0;
    T_OK(nvp_chain_save_buffer(c, s, *size, buf, &again));
    ck_assert_uint_eq(again, *size);
    return buf;
}

/* Two chains are the same model: structure, parameters bitwise, and
 * log_prob bitwise. */
static void check_same_model(const nvp_chain *a, const nvp_chain *b)
{
    const size_t dim = nvp_chain_dim(a), K = nvp_chain_num_layers(a), np = nvp_chain_num_params(a);
    ck_assert_uint_eq(nvp_chain_dim(b), dim);
    ck_assert_uint_eq(nvp_chain_num_layers(b), K);
    ck_assert_uint_eq(nvp_chain_num_params(b), np);
    float *pa = t_xmalloc(np * sizeof *pa), *pb = t_xmalloc(np * sizeof *pb);
    T_OK(nvp_chain_get_params(a, np, pa));
    T_OK(nvp_chain_get_params(b, np, pb));
    T_CHECK(t_first_diff(pa, pb, np) == (size_t)-1, "loaded parameter %zu differs", t_first_diff(pa, pb, np));
    for (size_t k = 0; k < K; k++) {
        const nvp_coupling *la = nvp_layer_as_coupling(nvp_chain_layer(a, k, NULL)), *lb = nvp_layer_as_coupling(nvp_chain_layer(b, k, NULL));
        unsigned char ma[16], mb[16];
        T_OK(nvp_coupling_get_mask(la, dim, ma));
        T_OK(nvp_coupling_get_mask(lb, dim, mb));
        T_CHECK(memcmp(ma, mb, dim) == 0, "layer %zu: mask differs", k);
        size_t ha[8], hb[8], na, nb;
        T_OK(nvp_coupling_get_hidden(la, 8, ha, &na));
        T_OK(nvp_coupling_get_hidden(lb, 8, hb, &nb));
        T_CHECK(na == nb && memcmp(ha, hb, na * sizeof *ha) == 0, "layer %zu: hidden widths differ", k);
        T_CHECK(nvp_coupling_log_scale_clamp(la) == nvp_coupling_log_scale_clamp(lb),
                "layer %zu: clamp %g vs %g", k, (double)nvp_coupling_log_scale_clamp(la),
                (double)nvp_coupling_log_scale_clamp(lb));
    }
    float y[60], l1[20], l2[20];
    t_prng p;
    t_prng_seed(&p, 6002);
    t_fill_normal(&p, 20 * dim, y, 1.5);
    T_OK(nvp_chain_log_prob(a, 20, y, l1));
    T_OK(nvp_chain_log_prob(b, 20, y, l2));
    T_CHECK(t_first_diff(l1, l2, 20) == (size_t)-1, "loaded model's log_prob differs");
    free(pa);
    free(pb);
}

START_TEST(test_io_chain_buffer_round_trip)
{
    nvp_scaler *s = NULL;
    nvp_chain *c = make_model(&s);
    size_t size;
    unsigned char *buf = save_model(c, s, &size);
    /* Header: magic, version, kind, CRC over the first 20 bytes. */
    ck_assert_int_eq(memcmp(buf, "NVPFLOW\0", 8), 0);
    ck_assert_uint_eq(get_u32(buf + 8), 1 /* couplings only: the version every release reads */);
    ck_assert_uint_eq(get_u32(buf + 20), crc32_bitwise(buf, 20));
    /* A buffer one byte short: NVP_EBUFSIZE, and *size tells the need. */
    size_t need = 0;
    ck_assert_int_eq(nvp_chain_save_buffer(c, s, size - 1, buf, &need), NVP_EBUFSIZE);
    ck_assert_uint_eq(need, size);
    free(buf);
    buf = save_model(c, s, &size);

    nvp_chain *c2 = NULL;
    nvp_scaler *s2 = NULL;
    T_OK(nvp_chain_load_buffer(&c2, &s2, size, buf, NULL));
    ck_assert_ptr_nonnull(s2);
    check_same_model(c, c2);
    float m1[3], d1[3], m2[3], d2[3];
    T_OK(nvp_scaler_get(s, 3, m1, d1));
    T_OK(nvp_scaler_get(s2, 3, m2, d2));
    T_CHECK(t_first_diff(m1, m2, 3) == (size_t)-1 && t_first_diff(d1, d2, 3) == (size_t)-1,
            "loaded scaler differs");
    /* Saving the loaded model gives the same bytes. */
    size_t size2;
    unsigned char *buf2 = save_model(c2, s2, &size2);
    ck_assert_uint_eq(size2, size);
    T_CHECK(memcmp(buf, buf2, size) == 0, "re-saved model differs");
    free(buf2);
    nvp_chain_free(c2);
    nvp_scaler_free(s2);

    /* Without a scaler: *scaler_out is NULL; scaler_out itself may be NULL. */
    free(buf);
    buf = save_model(c, NULL, &size);
    s2 = (nvp_scaler *)buf;
    T_OK(nvp_chain_load_buffer(&c2, &s2, size, buf, NULL));
    ck_assert_ptr_null(s2);
    check_same_model(c, c2);
    nvp_chain_free(c2);
    free(buf);
    buf = save_model(c, s, &size);
    T_OK(nvp_chain_load_buffer(&c2, NULL, size, buf, NULL));
    check_same_model(c, c2);
    nvp_chain_free(c2);
    free(buf);
    nvp_scaler_free(s);
    nvp_chain_free(c);
}
END_TEST

/* Every truncation, every corrupted byte, trailing bytes, another kind of
 * file and a future version are refused, with no handle handed out. */
START_TEST(test_io_chain_hostile_input)
{
    nvp_scaler *s = NULL;
    nvp_chain *c = make_model(&s);
    size_t size;
    unsigned char *buf = save_model(c, s, &size);
    unsigned char *bad = t_xmalloc(size + 16);
    for (size_t len = 0; len < size; len++) {
        memcpy(bad, buf, len);
        nvp_chain *o = (nvp_chain *)bad;
        nvp_scaler *so = (nvp_scaler *)bad;
        const int rc = nvp_chain_load_buffer(&o, &so, len, bad, NULL);
        T_CHECK(rc == NVP_EFORMAT, "truncated to %zu of %zu bytes: returned %d (%s)", len, size, rc,
                nvp_strerror(rc));
        T_CHECK(o == NULL && so == NULL, "truncated to %zu bytes: handles handed out", len);
    }
    for (size_t pos = 0; pos < size; pos++) {
        for (int k = 0; k < 2; k++) {
            memcpy(bad, buf, size);
            bad[pos] ^= k ? 0x01 : 0xa5;
            nvp_chain *o = NULL;
            nvp_scaler *so = NULL;
            const int rc = nvp_chain_load_buffer(&o, &so, size, bad, NULL);
            T_CHECK(rc == NVP_EFORMAT, "byte %zu of %zu xor 0x%02x: returned %d (%s)", pos, size,
                    k ? 0x01 : 0xa5, rc, nvp_strerror(rc));
            T_CHECK(o == NULL && so == NULL, "corrupt byte %zu: handles handed out", pos);
            T_CHECK(strstr(nvp_errmsg(), "nvp_chain_load_buffer") != NULL, "message '%s'", nvp_errmsg());
        }
    }
    /* Trailing garbage. */
    memcpy(bad, buf, size);
    bad[size] = 0;
    nvp_chain *o = NULL;
    ck_assert_int_eq(nvp_chain_load_buffer(&o, NULL, size + 1, bad, NULL), NVP_EFORMAT);
    ck_assert_ptr_null(o);
    /* A future version (header CRC fixed up): NVP_EVERSION. */
    memcpy(bad, buf, size);
    put_u32(bad + 8, NVP_FILE_FORMAT_VERSION + 1);
    put_u32(bad + 20, crc32_bitwise(bad, 20));
    ck_assert_int_eq(nvp_chain_load_buffer(&o, NULL, size, bad, NULL), NVP_EVERSION);
    ck_assert_ptr_null(o);
    /* A training state is not a model. */
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, 5, NULL));
    size_t asz;
    T_OK(nvp_adam_save_buffer(opt, NULL, 0, NULL, &asz));
    unsigned char *abuf = t_xmalloc(asz);
    T_OK(nvp_adam_save_buffer(opt, NULL, asz, abuf, &asz));
    ck_assert_int_eq(nvp_chain_load_buffer(&o, NULL, asz, abuf, NULL), NVP_EFORMAT);
    ck_assert_ptr_null(o);
    /* ... and a model is not a training state. */
    nvp_adam *ao = NULL;
    ck_assert_int_eq(nvp_adam_load_buffer(&ao, NULL, size, buf, NULL), NVP_EFORMAT);
    ck_assert_ptr_null(ao);
    free(abuf);
    nvp_adam_free(opt);
    free(bad);
    free(buf);
    nvp_scaler_free(s);
    nvp_chain_free(c);
}
END_TEST

/* Files: round trip, overwrite, no temporary left behind, and NVP_EIO for
 * a missing file or directory. */
START_TEST(test_io_files)
{
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], missing[256], nodir[256];
    snprintf(path, sizeof path, "%s/model.nvp", dir);
    snprintf(missing, sizeof missing, "%s/missing.nvp", dir);
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/model.nvp", dir);
    nvp_scaler *s = NULL;
    nvp_chain *c = make_model(&s);
    T_OK(nvp_chain_save_file(c, s, path));
    nvp_chain *c2 = NULL;
    nvp_scaler *s2 = NULL;
    T_OK(nvp_chain_load_file(&c2, &s2, path, NULL));
    check_same_model(c, c2);
    ck_assert_ptr_nonnull(s2);
    /* The file holds exactly what save_buffer gives. */
    size_t size;
    unsigned char *buf = save_model(c, s, &size);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *file = t_xmalloc(size + 1);
    const size_t got = fread(file, 1, size + 1, f);
    fclose(f);
    T_CHECK(got == size && memcmp(file, buf, size) == 0, "file (%zu bytes) differs from the buffer (%zu)", got, size);
    /* Overwrite with another model (no scaler). */
    nvp_chain *other = t_chain(3, 2, 1, (const size_t[]){4}, 6003);
    T_OK(nvp_chain_save_file(other, NULL, path));
    nvp_chain_free(c2);
    nvp_scaler_free(s2);
    T_OK(nvp_chain_load_file(&c2, &s2, path, NULL));
    check_same_model(other, c2);
    ck_assert_ptr_null(s2);
    /* Only the model file is in the directory: no temporary left. */
    T_CHECK(count_entries(dir) == 1 && access(path, F_OK) == 0, "%d files after saving, not the model alone", count_entries(dir));
    /* Missing file, missing directory. */
    nvp_chain *o = (nvp_chain *)buf;
    ck_assert_int_eq(nvp_chain_load_file(&o, NULL, missing, NULL), NVP_EIO);
    ck_assert_ptr_null(o);
    T_CHECK(strstr(nvp_errmsg(), "nvp_chain_load_file") != NULL, "message '%s'", nvp_errmsg());
    ck_assert_int_eq(nvp_chain_save_file(c, s, nodir), NVP_EIO);
    T_CHECK(strstr(nvp_chain_errmsg(c), "nvp_chain_save_file") != NULL, "message '%s'", nvp_chain_errmsg(c));
    /* A directory is not a model file. */
    ck_assert_int_eq(nvp_chain_load_file(&o, NULL, dir, NULL), NVP_EIO);
    /* A truncated file. */
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(buf, 1, size / 2, f);
    fclose(f);
    ck_assert_int_eq(nvp_chain_load_file(&o, NULL, path, NULL), NVP_EFORMAT);
    ck_assert_ptr_null(o);
    /* Training state files. */
    nvp_adam *opt = NULL, *opt2 = NULL;
    nvp_rng *r = t_rng(1), *r2 = NULL;
    T_OK(nvp_adam_create(&opt, 7, NULL));
    T_OK(nvp_adam_save_file(opt, r, path));
    T_OK(nvp_adam_load_file(&opt2, &r2, path, NULL));
    ck_assert_uint_eq(nvp_adam_num_params(opt2), 7);
    ck_assert_ptr_nonnull(r2);
    nvp_adam_free(opt2);
    ck_assert_int_eq(nvp_adam_load_file(&opt2, NULL, missing, NULL), NVP_EIO);
    ck_assert_ptr_null(opt2);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
    nvp_adam_free(opt);
    nvp_rng_free(r);
    nvp_rng_free(r2);
    free(file);
    free(buf);
    nvp_chain_free(other);
    nvp_chain_free(c2);
    nvp_scaler_free(s);
    nvp_chain_free(c);
}
END_TEST

/* Reads the whole of what is waiting in a FIFO opened non-blocking. */
static size_t drain_fifo(int fd, unsigned char *out, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got < cap && (r = read(fd, out + got, cap - got)) > 0)
        got += (size_t)r;
    return got;
}

/* Paths that are not plain files: a symbolic link is followed (the file
 * it names gets the model, the link stays a link), a FIFO (like
 * /dev/null or a pipe) is written straight through and stays a FIFO
 * rather than being replaced by a regular file, /dev/fd/N writes to the
 * open file, and a directory is refused with NVP_EIO and left as it
 * was. */
START_TEST(test_io_special_paths)
{
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char target[256], link[256], fifo[256], sub[256];
    snprintf(target, sizeof target, "%s/target.nvp", dir);
    snprintf(link, sizeof link, "%s/link.nvp", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    /* A model small enough for a pipe's buffer (Linux: 64 KiB). */
    nvp_chain *c = t_chain(2, 2, 1, (const size_t[]){8}, 6011);
    size_t size;
    unsigned char *buf = save_model(c, NULL, &size);
    ck_assert_uint_lt(size, 4096);
    unsigned char *got = t_xmalloc(size + 1);

    ck_assert_int_eq(symlink("target.nvp", link), 0);
    T_OK(nvp_chain_save_file(c, NULL, link));
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0);
    T_CHECK(S_ISLNK(st.st_mode), "the link was replaced (mode %o)", (unsigned)st.st_mode);
    FILE *f = fopen(target, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(got, 1, size + 1, f);
    fclose(f);
    T_CHECK(n == size && memcmp(got, buf, size) == 0, "the link's target holds %zu bytes, not the model's %zu", n, size);

    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    /* A reader must be there before a writer can open a FIFO. */
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(rd, 0);
    T_OK(nvp_chain_save_file(c, NULL, fifo));
    n = drain_fifo(rd, got, size + 1);
    close(rd);
    T_CHECK(n == size && memcmp(got, buf, size) == 0, "the FIFO received %zu bytes, not the model's %zu", n, size);
    ck_assert_int_eq(lstat(fifo, &st), 0);
    T_CHECK(S_ISFIFO(st.st_mode), "the FIFO was replaced (mode %o)", (unsigned)st.st_mode);

    /* /dev/fd/N (like /dev/stdout, /dev/fd/1) stands for a file this
     * process has open: the model must reach that open file, not a new
     * file put in its place. */
    char open_path[256], dev_fd[64];
    snprintf(open_path, sizeof open_path, "%s/open", dir);
    int ofd = open(open_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(ofd, 0);
    /* However spelt. */
    for (int spelling = 0; spelling < 2; spelling++) {
        snprintf(dev_fd, sizeof dev_fd, spelling ? "//dev/./fd/%d" : "/dev/fd/%d", ofd);
        ck_assert_int_eq(ftruncate(ofd, 0), 0);
        T_OK(nvp_chain_save_file(c, NULL, dev_fd));
        const ssize_t r = pread(ofd, got, size + 1, 0);
        T_CHECK(r == (ssize_t)size && memcmp(got, buf, size) == 0, "%s: the open file holds %zd bytes, not the model's %zu", dev_fd, r, size);
    }
    close(ofd);
    unlink(open_path);
    /* A chain of 40 links is followed, as open() follows it; 41 are
     * refused (ELOOP) and change nothing. */
    char name[256], next[64];
    for (int i = 1; i <= 41; i++) {
        snprintf(name, sizeof name, "%s/l%d", dir, i);
        snprintf(next, sizeof next, i == 1 ? "chained.nvp" : "l%d", i - 1);
        ck_assert_int_eq(symlink(next, name), 0);
    }
    snprintf(name, sizeof name, "%s/l40", dir);
    T_OK(nvp_chain_save_file(c, NULL, name));
    ck_assert_int_eq(lstat(name, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    snprintf(name, sizeof name, "%s/l41", dir);
    ck_assert_int_eq(nvp_chain_save_file(c, NULL, name), NVP_EIO);
    for (int i = 1; i <= 41; i++) {
        snprintf(name, sizeof name, "%s/l%d", dir, i);
        ck_assert_int_eq(unlink(name), 0);
    }
    snprintf(name, sizeof name, "%s/chained.nvp", dir);
    ck_assert_int_eq(unlink(name), 0);

    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(nvp_chain_save_file(c, NULL, sub), NVP_EIO);
    T_CHECK(strstr(nvp_chain_errmsg(c), "directory") != NULL, "message '%s'", nvp_chain_errmsg(c));
    ck_assert_int_eq(lstat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    /* Nothing else was created: no temporary file left anywhere. */
    ck_assert_int_eq(count_entries(dir), 4);
    ck_assert_int_eq(rmdir(sub), 0);
    unlink(fifo);
    unlink(link);
    unlink(target);
    ck_assert_int_eq(rmdir(dir), 0);
    free(got);
    free(buf);
    nvp_chain_free(c);
}
END_TEST

/* Saving keeps an existing file's permissions and gives a new file those
 * of the umask (0666 less it), as fopen would.  Loading refuses at once,
 * without waiting or allocating: a FIFO (no writer needed), a file that
 * does not start as a libnvpflow file, and one larger than any saved file
 * can be (12 bytes per parameter at NVP_MAX_PARAMS and 16 MiB more, made
 * here as a sparse file). */
START_TEST(test_io_file_modes_and_refusals)
{
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], fifo[256], junk[256], huge[256];
    snprintf(path, sizeof path, "%s/model.nvp", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(junk, sizeof junk, "%s/junk", dir);
    snprintf(huge, sizeof huge, "%s/huge", dir);
    nvp_chain *c = t_chain(2, 2, 1, (const size_t[]){8}, 6013);
    struct stat st;
    const mode_t saved_mask = umask(077);
    T_OK(nvp_chain_save_file(c, NULL, path));
    ck_assert_int_eq(stat(path, &st), 0);
    T_CHECK((st.st_mode & 0777) == 0600, "new file under umask 077: mode %o", (unsigned)(st.st_mode & 0777));
    umask(022);
    ck_assert_int_eq(chmod(path, 0640), 0);
    T_OK(nvp_chain_save_file(c, NULL, path));
    ck_assert_int_eq(stat(path, &st), 0);
    T_CHECK((st.st_mode & 0777) == 0640, "replaced 0640 file: mode %o", (unsigned)(st.st_mode & 0777));
    ck_assert_int_eq(unlink(path), 0);
    T_OK(nvp_chain_save_file(c, NULL, path));
    ck_assert_int_eq(stat(path, &st), 0);
    T_CHECK((st.st_mode & 0777) == 0644, "new file under umask 022: mode %o", (unsigned)(st.st_mode & 0777));
    umask(saved_mask);

    nvp_chain *o = NULL;
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    /* A regression would wait for a writer forever; Check's timeout does
     * not run without fork (as under valgrind), so an alarm ends it. */
    alarm(60);
    ck_assert_int_eq(nvp_chain_load_file(&o, NULL, fifo, NULL), NVP_EIO);
    alarm(0);
    ck_assert_ptr_null(o);
    T_CHECK(strstr(nvp_errmsg(), "not a regular file") != NULL, "message '%s'", nvp_errmsg());

    FILE *f = fopen(junk, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("not a model, but long enough to have a header\n", f);
    fclose(f);
    ck_assert_int_eq(nvp_chain_load_file(&o, NULL, junk, NULL), NVP_EFORMAT);
    T_CHECK(strstr(nvp_errmsg(), "not a libnvpflow file") != NULL, "message '%s'", nvp_errmsg());

    int fd = open(huge, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    const off_t too_big = (off_t)12 * (off_t)NVP_MAX_PARAMS + ((off_t)1 << 24) + 1;
    ck_assert_int_eq(ftruncate(fd, too_big), 0);
    close(fd);
    nvp_adam *oa = NULL;
    ck_assert_int_eq(nvp_adam_load_file(&oa, NULL, huge, NULL), NVP_EFORMAT);
    ck_assert_ptr_null(oa);
    T_CHECK(strstr(nvp_errmsg(), "more than any saved file") != NULL, "message '%s'", nvp_errmsg());

    unlink(huge);
    unlink(junk);
    unlink(fifo);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
    nvp_chain_free(c);
}
END_TEST

/* Training interrupted after 12 steps (chain, Adam with its parameter
 * average and the minibatch generator saved, then loaded into fresh
 * handles) continues exactly as the uninterrupted run: bitwise the same
 * parameters and average after 25 steps. */
START_TEST(test_io_training_resume)
{
    const size_t hidden[2] = {8, 8};
    enum { N = 300 };
    float data[2 * N];
    nvp_rng *dr = t_rng(6100);
    T_OK(nvp_two_moons(dr, N, 0.05f, data, NULL));
    nvp_rng_free(dr);
    nvp_chain *a = t_chain(2, 4, 2, hidden, 6101);
    nvp_adam *oa = NULL;
    T_OK(nvp_adam_create(&oa, nvp_chain_num_params(a), NULL));
    T_OK(nvp_adam_set_lr(oa, 3e-3f));
    T_OK(nvp_adam_set_betas(oa, 0.8f, 0.99f));
    T_OK(nvp_adam_set_average(oa, 0.9f, nvp_chain_num_params(a), nvp_chain_params(a)));
    nvp_rng *ra = t_rng(6102);
    for (int s = 0; s < 12; s++)
        T_OK(nvp_chain_train_step(a, oa, ra, N, data, 32, NULL));
    /* Leave a spare normal pending in the generator: it must survive. */
    float g1;
    T_OK(nvp_rng_normal(ra, 1, &g1));
    size_t msz, asz;
    T_OK(nvp_chain_save_buffer(a, NULL, 0, NULL, &msz));
    T_OK(nvp_adam_save_buffer(oa, ra, 0, NULL, &asz));
    unsigned char *mbuf = t_xmalloc(msz), *abuf = t_xmalloc(asz);
    T_OK(nvp_chain_save_buffer(a, NULL, msz, mbuf, &msz));
    T_OK(nvp_adam_save_buffer(oa, ra, asz, abuf, &asz));
    /* Run A goes on. */
    float ga, gb;
    T_OK(nvp_rng_normal(ra, 1, &ga));
    for (int s = 12; s < 25; s++)
        T_OK(nvp_chain_train_step(a, oa, ra, N, data, 32, NULL));
    /* Run B resumes from the saved state. */
    nvp_chain *b = NULL;
    nvp_adam *ob = NULL;
    nvp_rng *rb = NULL;
    T_OK(nvp_chain_load_buffer(&b, NULL, msz, mbuf, NULL));
    T_OK(nvp_adam_load_buffer(&ob, &rb, asz, abuf, NULL));
    ck_assert_ptr_nonnull(rb);
    ck_assert_uint_eq(nvp_adam_num_steps(ob), 12);
    T_CHECK(nvp_adam_lr(ob) == 3e-3f, "lr not restored: %g", (double)nvp_adam_lr(ob));
    T_OK(nvp_rng_normal(rb, 1, &gb));
    T_CHECK(ga == gb, "the pending normal draw was not restored: %g vs %g", (double)ga, (double)gb);
    for (int s = 12; s < 25; s++)
        T_OK(nvp_chain_train_step(b, ob, rb, N, data, 32, NULL));
    const size_t np = nvp_chain_num_params(a);
    const size_t d = t_first_diff(nvp_chain_params(a), nvp_chain_params(b), np);
    T_CHECK(d == (size_t)-1, "resumed run differs at parameter %zu: %.9g vs %.9g", d,
            (double)nvp_chain_params(a)[d], (double)nvp_chain_params(b)[d]);
    ck_assert_uint_eq(nvp_adam_num_steps(ob), 25);
    ck_assert_float_eq(nvp_adam_average_decay(ob), 0.9f);
    float *avg_a = t_xmalloc(np * sizeof *avg_a), *avg_b = t_xmalloc(np * sizeof *avg_b);
    T_OK(nvp_adam_get_average(oa, np, avg_a));
    T_OK(nvp_adam_get_average(ob, np, avg_b));
    T_CHECK(t_first_diff(avg_a, avg_b, np) == (size_t)-1, "resumed run's average differs at %zu",
            t_first_diff(avg_a, avg_b, np));
    free(avg_a);
    free(avg_b);
    /* The average section comes last: u32 tag, u64 length, f32 decay,
     * f32 avg[np], u32 CRC.  With a valid CRC, an out-of-range decay or a
     * non-finite value is still refused. */
    const size_t avg_sec = asz - (4 + 8 + 4 + 4 * np + 4);
    ck_assert_uint_eq(get_u32(abuf + avg_sec), (uint32_t)'A' | 'V' << 8 | 'G' << 16 | ' ' << 24);
    const float bad_values[][2] = {{0.0f, 1.0f}, {1.0f, 1.0f}, {-0.5f, 1.0f}, {NAN, 1.0f},
                                   {0.9f, NAN}, {0.9f, INFINITY}};
    for (size_t k = 0; k < sizeof bad_values / sizeof *bad_values; k++) {
        unsigned char *bad = t_xmalloc(asz);
        memcpy(bad, abuf, asz);
        uint32_t bits;
        memcpy(&bits, &bad_values[k][0], 4);
        put_u32(bad + avg_sec + 12, bits);
        memcpy(&bits, &bad_values[k][1], 4);
        put_u32(bad + avg_sec + 16 + 4 * (np / 2), bits);
        put_u32(bad + asz - 4, crc32_bitwise(bad + avg_sec, asz - 4 - avg_sec));
        nvp_adam *o = NULL;
        const int rc = nvp_adam_load_buffer(&o, NULL, asz, bad, NULL);
        T_CHECK(rc == NVP_EFORMAT && !o, "average section (decay %g, value %g): returned %d",
                (double)bad_values[k][0], (double)bad_values[k][1], rc);
        T_CHECK(strstr(nvp_errmsg(), "average") != NULL, "message '%s'", nvp_errmsg());
        free(bad);
    }
    /* Truncated and corrupted training states are refused. */
    for (size_t len = 0; len < asz; len += 7) {
        nvp_adam *o = NULL;
        nvp_rng *ro = NULL;
        T_CHECK(nvp_adam_load_buffer(&o, &ro, len, abuf, NULL) == NVP_EFORMAT && !o && !ro,
                "training state truncated to %zu of %zu bytes was not refused", len, asz);
    }
    for (size_t pos = 0; pos < asz; pos += 3) {
        abuf[pos] ^= 0x10;
        nvp_adam *o = NULL;
        T_CHECK(nvp_adam_load_buffer(&o, NULL, asz, abuf, NULL) == NVP_EFORMAT && !o,
                "training state with byte %zu corrupted was not refused", pos);
        abuf[pos] ^= 0x10;
    }
    free(mbuf);
    free(abuf);
    nvp_chain_free(a);
    nvp_chain_free(b);
    nvp_adam_free(oa);
    nvp_adam_free(ob);
    nvp_rng_free(ra);
    nvp_rng_free(rb);
}
END_TEST

/* Appends a section (tag, u64 length, payload, CRC) at dst; returns its
 * size. */
static size_t put_section(unsigned char *dst, const char tag[4], const unsigned char *payload,
                          size_t len)
{
    memcpy(dst, tag, 4);
    for (int i = 0; i < 8; i++)
        dst[4 + i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(dst + 12, payload, len);
    put_u32(dst + 12 + len, crc32_bitwise(dst, 12 + len));
    return 12 + len + 4;
}

/* The AVG section of a training state, rebuilt with valid CRCs around a
 * payload of the wrong size, or twice: each is refused. */
START_TEST(test_io_average_section_layout)
{
    enum { N = 7 };
    const float start[N] = {1, -2, 3, -4, 5, -6, 7};
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, N, NULL));
    T_OK(nvp_adam_set_average(o, 0.75f, N, start));
    size_t size;
    T_OK(nvp_adam_save_buffer(o, NULL, 0, NULL, &size));
    unsigned char *good = t_xmalloc(size);
    T_OK(nvp_adam_save_buffer(o, NULL, size, good, &size));
    /* Header, ADAM, then AVG: f32 decay, f32 avg[N]. */
    const size_t avg_len = 4 + 4 * N, avg_at = size - (12 + avg_len + 4);
    ck_assert_int_eq(memcmp(good + avg_at, "AVG ", 4), 0);
    unsigned char payload[4 + 4 * N + 4];
    memcpy(payload, good + avg_at + 12, avg_len);
    payload[avg_len] = 0; /* one extra float of zeros for the long case */
    payload[avg_len + 1] = payload[avg_len + 2] = payload[avg_len + 3] = 0;
    const struct {
        const char *what;
        size_t len; /* payload bytes */
        int sections;
    } cases[] = {
        {"a float short", avg_len - 4, 1},
        {"a float long", avg_len + 4, 1},
        {"only the decay", 4, 1},
        {"empty", 0, 1},
        {"twice", avg_len, 2},
    };
    unsigned char *bad = t_xmalloc(size + 2 * (12 + avg_len + 8));
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memcpy(bad, good, avg_at);
        size_t at = avg_at;
        for (int j = 0; j < cases[k].sections; j++)
            at += put_section(bad + at, "AVG ", payload, cases[k].len);
        put_u32(bad + 16, get_u32(good + 16) + (uint32_t)cases[k].sections - 1);
        put_u32(bad + 20, crc32_bitwise(bad, 20));
        nvp_adam *back = NULL;
        const int rc = nvp_adam_load_buffer(&back, NULL, at, bad, NULL);
        T_CHECK(rc == NVP_EFORMAT && !back, "average section %s: returned %d (%s)", cases[k].what,
                rc, nvp_errmsg());
    }
    /* The same surgery with the right payload loads: the cases above fail
     * for their payload, not for the rebuilt framing. */
    memcpy(bad, good, avg_at);
    const size_t at = avg_at + put_section(bad + avg_at, "AVG ", payload, avg_len);
    ck_assert_uint_eq(at, size);
    nvp_adam *back = NULL;
    T_OK(nvp_adam_load_buffer(&back, NULL, at, bad, NULL));
    ck_assert_float_eq(nvp_adam_average_decay(back), 0.75f);
    nvp_adam_free(back);
    free(bad);
    free(good);
    nvp_adam_free(o);
}
END_TEST

/* Gradient-norm clipping survives a save and load: a run interrupted after
 * 12 steps and resumed from the saved state clips as the uninterrupted one
 * (bitwise the same parameters after 25 steps).  The CLIP section is
 * written only when clipping is on, and with valid CRCs around a bad
 * limit, a wrong size or a second copy it is refused. */
START_TEST(test_io_clip_section)
{
    const size_t hidden[1] = {8};
    enum { N = 200 };
    float data[2 * N];
    nvp_rng *dr = t_rng(6300);
    T_OK(nvp_two_moons(dr, N, 0.05f, data, NULL));
    nvp_rng_free(dr);
    nvp_chain *a = t_chain(2, 2, 1, hidden, 6301);
    const size_t np = nvp_chain_num_params(a);
    nvp_adam *oa = NULL;
    T_OK(nvp_adam_create(&oa, np, NULL));
    T_OK(nvp_adam_set_lr(oa, 1e-2f));
    size_t plain;
    T_OK(nvp_adam_save_buffer(oa, NULL, 0, NULL, &plain));
    T_OK(nvp_adam_set_clip_norm(oa, 0.25f));
    nvp_rng *ra = t_rng(6302);
    for (int s = 0; s < 12; s++)
        T_OK(nvp_chain_train_step(a, oa, ra, N, data, 32, NULL));
    T_CHECK(nvp_adam_last_grad_norm(oa) > 0.25f, "the limit clipped nothing (norm %g)",
            (double)nvp_adam_last_grad_norm(oa));
    size_t msz, asz;
    T_OK(nvp_chain_save_buffer(a, NULL, 0, NULL, &msz));
    T_OK(nvp_adam_save_buffer(oa, ra, 0, NULL, &asz));
    unsigned char *mbuf = t_xmalloc(msz), *abuf = t_xmalloc(asz);
    T_OK(nvp_chain_save_buffer(a, NULL, msz, mbuf, &msz));
    T_OK(nvp_adam_save_buffer(oa, ra, asz, abuf, &asz));
    for (int s = 12; s < 25; s++)
        T_OK(nvp_chain_train_step(a, oa, ra, N, data, 32, NULL));
    nvp_chain *b = NULL;
    nvp_adam *ob = NULL;
    nvp_rng *rb = NULL;
    T_OK(nvp_chain_load_buffer(&b, NULL, msz, mbuf, NULL));
    T_OK(nvp_adam_load_buffer(&ob, &rb, asz, abuf, NULL));
    ck_assert_float_eq(nvp_adam_clip_norm(ob), 0.25f);
    for (int s = 12; s < 25; s++)
        T_OK(nvp_chain_train_step(b, ob, rb, N, data, 32, NULL));
    const size_t d = t_first_diff(nvp_chain_params(a), nvp_chain_params(b), np);
    T_CHECK(d == (size_t)-1, "resumed clipped run differs at parameter %zu", d);

    /* Layout: the generator's section, then CLIP last (tag, u64 length 4,
     * f32 limit, CRC); without clipping, neither it nor its bytes. */
    const size_t clip_len = 12 + 4 + 4, clip_at = asz - clip_len;
    ck_assert_int_eq(memcmp(abuf + clip_at, "CLIP", 4), 0);
    T_OK(nvp_adam_save_buffer(oa, NULL, 0, NULL, &msz));
    T_OK(nvp_adam_set_clip_norm(oa, 0.0f));
    size_t off;
    T_OK(nvp_adam_save_buffer(oa, NULL, 0, NULL, &off));
    ck_assert_uint_eq(off, plain);
    ck_assert_uint_eq(msz, plain + clip_len);
    const float limit = 0.25f;
    unsigned char payload[8];
    memcpy(payload, &limit, 4);
    memset(payload + 4, 0, 4);
    const struct {
        const char *what;
        float value;
        size_t len;
        int sections;
    } cases[] = {
        {"limit 0", 0.0f, 4, 1},        {"negative limit", -1.0f, 4, 1},
        {"NaN limit", NAN, 4, 1},       {"infinite limit", INFINITY, 4, 1},
        {"empty", 0.25f, 0, 1},         {"a float long", 0.25f, 8, 1},
        {"twice", 0.25f, 4, 2},
    };
    unsigned char *bad = t_xmalloc(asz + clip_len + 8);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memcpy(bad, abuf, clip_at);
        memcpy(payload, &cases[k].value, 4);
        size_t at = clip_at;
        for (int j = 0; j < cases[k].sections; j++)
            at += put_section(bad + at, "CLIP", payload, cases[k].len);
        put_u32(bad + 16, get_u32(abuf + 16) + (uint32_t)cases[k].sections - 1);
        put_u32(bad + 20, crc32_bitwise(bad, 20));
        nvp_adam *o = NULL;
        const int rc = nvp_adam_load_buffer(&o, NULL, at, bad, NULL);
        T_CHECK(rc == NVP_EFORMAT && !o, "clip section %s: returned %d (%s)", cases[k].what, rc,
                nvp_errmsg());
    }
    /* The same surgery with the right payload loads. */
    memcpy(bad, abuf, clip_at);
    memcpy(payload, &limit, 4);
    const size_t at = clip_at + put_section(bad + clip_at, "CLIP", payload, 4);
    ck_assert_uint_eq(at, asz);
    nvp_adam *back = NULL;
    T_OK(nvp_adam_load_buffer(&back, NULL, at, bad, NULL));
    ck_assert_float_eq(nvp_adam_clip_norm(back), 0.25f);
    nvp_adam_free(back);
    free(bad);
    free(mbuf);
    free(abuf);
    nvp_chain_free(a);
    nvp_chain_free(b);
    nvp_adam_free(oa);
    nvp_adam_free(ob);
    nvp_rng_free(ra);
    nvp_rng_free(rb);
}
END_TEST


/* Parameters made non-finite through nvp_chain_params: the chain is not
 * saved (NVP_ENONFINITE), and no file is written.  (Training can no longer
 * make them so: a step whose result is not finite is refused.) */
START_TEST(test_io_nonfinite_not_saved)
{
    const size_t hidden[1] = {8};
    nvp_chain *c = t_chain(2, 2, 1, hidden, 6201);
    nvp_chain_params(c)[3] = NAN;
    size_t size = 0;
    ck_assert_int_eq(nvp_chain_save_buffer(c, NULL, 0, NULL, &size), NVP_ENONFINITE);
    T_CHECK(strstr(nvp_chain_errmsg(c), "non-finite") != NULL, "message '%s'",
            nvp_chain_errmsg(c));
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/x.nvp", dir);
    ck_assert_int_eq(nvp_chain_save_file(c, NULL, path), NVP_ENONFINITE);
    T_CHECK(rmdir(dir) == 0, "a refused save left a file in %s", dir);
    nvp_chain_free(c);
}
END_TEST

/* Loads bytes as a model both ways (scaler_out NULL and not) from a
 * buffer and from a file at path; returns the code, which must be the
 * same all four ways, with no handle handed out on failure. */
static int load_model_four_ways(const unsigned char *bytes, size_t size, const char *path,
                                const char *what)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
    int rcs[4];
    for (int way = 0; way < 4; way++) {
        nvp_chain *c = (nvp_chain *)path;
        nvp_scaler *sc = (nvp_scaler *)path;
        nvp_scaler **so = way & 1 ? &sc : NULL;
        rcs[way] = way & 2 ? nvp_chain_load_file(&c, so, path, NULL)
                           : nvp_chain_load_buffer(&c, so, size, bytes, NULL);
        if (rcs[way] != NVP_OK) {
            T_CHECK(c == NULL && (!so || sc == NULL), "%s (way %d): a failed load handed out a handle",
                    what, way);
            T_CHECK(strstr(nvp_errmsg(), "scaler") != NULL, "%s (way %d): message '%s'", what, way,
                    nvp_errmsg());
        } else {
            nvp_chain_free(c);
            if (so)
                nvp_scaler_free(sc);
        }
    }
    T_CHECK(rcs[0] == rcs[1] && rcs[0] == rcs[2] && rcs[0] == rcs[3],
            "%s: buffer %d / %d (without / with scaler_out), file %d / %d", what, rcs[0], rcs[1],
            rcs[2], rcs[3]);
    return rcs[0];
}

/* Issue 16, item 3: whether a model file is valid must not depend on
 * whether the caller asks for its scaler.  A scaler section rebuilt with
 * valid CRCs around a wrong dimension, a short or long payload, sd <= 0
 * or a non-finite mean or sd is refused with NVP_EFORMAT with scaler_out
 * NULL as with it, from a buffer as from a file. */
START_TEST(test_io_scaler_section_always_checked)
{
    nvp_scaler *s = NULL;
    nvp_chain *c = make_model(&s);
    enum { D = 3 };
    size_t size;
    unsigned char *good = save_model(c, s, &size);
    /* Header, ARCH, PARM, then SCAL: u32 dim, f32 mean[D], f32 sd[D]. */
    const size_t scal_len = 4 + 8 * D, scal_at = size - (12 + scal_len + 4);
    ck_assert_int_eq(memcmp(good + scal_at, "SCAL", 4), 0);
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/model.nvp", dir);
    const float nan = NAN, inf = INFINITY;
    const struct {
        const char *what;
        uint32_t dim;
        int len_delta; /* floats added to (or taken from) the payload */
        int slot;      /* float slot replaced (0..2 mean, 3..5 sd), -1 none */
        float value;
    } cases[] = {
        {"dim one more", D + 1, 0, -1, 0},      {"dim one less", D - 1, 0, -1, 0},
        {"dim 0", 0, 0, -1, 0},                 {"a float short", D, -1, -1, 0},
        {"a float long", D, 1, -1, 0},          {"only the dim", D, -2 * D, -1, 0},
        {"sd 0", D, 0, 4, 0.0f},                {"sd -0", D, 0, 3, -0.0f},
        {"sd negative", D, 0, 5, -1.0f},        {"sd NaN", D, 0, 3, nan},
        {"sd infinite", D, 0, 4, inf},          {"mean NaN", D, 0, 0, nan},
        {"mean -infinite", D, 0, 2, -inf},
    };
    unsigned char payload[4 + 8 * D + 4];
    unsigned char *bad = t_xmalloc(size + 16);
    for (size_t k = 0; k <= sizeof cases / sizeof *cases; k++) {
        /* The last round rebuilds the section as it was: it must load, so
         * the cases fail for their payload, not for the rebuilt framing. */
        const int control = k == sizeof cases / sizeof *cases;
        memcpy(payload, good + scal_at + 12, scal_len);
        memset(payload + scal_len, 0, 4);
        size_t len = scal_len;
        const char *what = "the section as saved";
        if (!control) {
            what = cases[k].what;
            put_u32(payload, cases[k].dim);
            len = (size_t)((long)scal_len + 4L * cases[k].len_delta);
            if (cases[k].slot >= 0)
                memcpy(payload + 4 + 4 * cases[k].slot, &cases[k].value, 4);
        }
        memcpy(bad, good, scal_at);
        const size_t n = scal_at + put_section(bad + scal_at, "SCAL", payload, len);
        const int rc = load_model_four_ways(bad, n, path, what);
        if (control)
            T_CHECK(rc == NVP_OK, "the rebuilt section was refused: %d (%s)", rc, nvp_errmsg());
        else
            T_CHECK(rc == NVP_EFORMAT, "scaler section %s: returned %d (%s)", what, rc,
                    nvp_strerror(rc));
    }
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
    free(bad);
    free(good);
    nvp_scaler_free(s);
    nvp_chain_free(c);
}
END_TEST

/* An allocator that records the largest block asked for and refuses any
 * above 64 MiB (so that a regression fails with NVP_ENOMEM rather than
 * taking gigabytes). */
typedef struct big_alloc {
    size_t largest, live;
} big_alloc;

static void *big_alloc_fn(void *user, size_t size)
{
    big_alloc *b = user;
    if (size > b->largest)
        b->largest = size;
    void *p = size > ((size_t)64 << 20) ? NULL : malloc(size ? size : 1);
    b->live += p != NULL;
    return p;
}

static void *big_realloc_fn(void *user, void *ptr, size_t size)
{
    big_alloc *b = user;
    if (size > b->largest)
        b->largest = size;
    void *p = size > ((size_t)64 << 20) ? NULL : realloc(ptr, size ? size : 1);
    b->live += p != NULL && ptr == NULL;
    return p;
}

static void big_free_fn(void *user, void *ptr)
{
    big_alloc *b = user;
    if (ptr) {
        ck_assert_uint_gt(b->live, 0);
        b->live--;
    }
    free(ptr);
}

/* Bytes this process has read so far (/proc/self/io's rchar), or -1
 * where the kernel does not say. */
static long long bytes_read_so_far(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    long long v = -1;
    char key[32];
    long long x;
    while (fscanf(f, "%31s %lld", key, &x) == 2)
        if (strcmp(key, "rchar:") == 0)
            v = x;
    fclose(f);
    return v;
}

/* Writes a 24-byte header (kind, section count) at p. */
static void put_header(unsigned char *p, uint32_t kind, uint32_t sections)
{
    memcpy(p, "NVPFLOW\0", 8);
    put_u32(p + 8, 1);
    put_u32(p + 12, kind);
    put_u32(p + 16, sections);
    put_u32(p + 20, crc32_bitwise(p, 20));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Issue 16, item 5: a file is read whole only when its header and section
 * table (and the small fields that give the sections' sizes) account for
 * every byte of it.  Sparse files of 3 GiB that start as libnvpflow files
 * (a valid header and nothing else; a valid architecture and a parameter
 * section whose length and count agree with each other but not with the
 * architecture; an architecture longer than its layers can be; a training
 * state whose optimizer section is longer than its count says, or of the
 * right length with zero settings) are refused with NVP_EFORMAT at once:
 * no block of more than 64 KiB is allocated and (where the kernel tells)
 * less than 1 MiB is read.  A valid file loads through the same allocator,
 * which sees its whole size asked for: the measure works. */
START_TEST(test_io_sparse_file_refused_before_reading)
{
    char dir[] = "/tmp/nvp_test_io_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sparse.nvp", dir);
    const uint64_t big = (uint64_t)3 << 30;
    nvp_chain *c = t_chain(2, 1, 1, (const size_t[]){4}, 6400);
    size_t msize;
    unsigned char *model = save_model(c, NULL, &msize);
    /* Header, then ARCH: tag, u64 length, payload, CRC. */
    uint64_t arch_len = 0;
    for (int i = 7; i >= 0; i--)
        arch_len = arch_len << 8 | model[28 + i];
    const size_t arch_end = 24 + 12 + (size_t)arch_len + 4;
    ck_assert_uint_lt(arch_end, msize);
    unsigned char head[4096];
    for (int k = 0; k < 6; k++) {
        const char *what = "", *why = "unexpected bytes after the last section";
        uint32_t kind = 1;
        size_t n = 24; /* bytes of head written at the start of the file */
        uint64_t size = big;
        memset(head, 0, sizeof head);
        switch (k) {
        case 0:
            what = "a model header and zeros";
            put_header(head, 1, 2);
            break;
        case 1: {
            what = "a parameter section the architecture does not account for";
            memcpy(head, model, arch_end);
            /* u64 count, f32 params[count]: length and count agree. */
            const uint64_t count = (big - arch_end - 24) / 4;
            memcpy(head + arch_end, "PARM", 4);
            put_u64(head + arch_end + 4, 8 + 4 * count);
            put_u64(head + arch_end + 12, count);
            n = arch_end + 20;
            size = arch_end + 12 + 8 + 4 * count + 4;
            why = "does not match the architecture";
            break;
        }
        case 2:
            what = "an architecture longer than its layers can be";
            /* PARM (count 0) first, then ARCH to the end of the file. */
            put_header(head, 1, 2);
            memcpy(head + 24, "PARM", 4);
            put_u64(head + 28, 8);
            memcpy(head + 48, "ARCH", 4);
            put_u64(head + 52, big - 48 - 16);
            put_u32(head + 60, 2);
            put_u32(head + 64, 1);
            put_u32(head + 68, 1);
            n = 72;
            why = "an architecture of 1 layers";
            break;
        case 3:
            what = "a training-state header and zeros";
            kind = 2;
            put_header(head, 2, 1);
            break;
        case 4:
        case 5: {
            what = k == 4 ? "an optimizer section longer than its count says"
                          : "an optimizer section of zero settings";
            kind = 2;
            put_header(head, 2, 1);
            memcpy(head + 24, "ADAM", 4);
            const uint64_t len = big - 24 - 16;
            put_u64(head + 28, len);
            put_u64(head + 36, k == 4 ? 1 : (len - 32) / 8);
            ck_assert_uint_eq((len - 32) % 8, 0);
            n = 44;
            why = k == 4 ? "size does not match" : "invalid optimizer settings";
            break;
        }
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
        ck_assert_int_eq(pwrite(fd, head, n, 0), (ssize_t)n);
        ck_assert_int_eq(close(fd), 0);
        big_alloc st = {0, 0};
        const nvp_allocator a = {NVP_ALLOCATOR_VERSION, &st, big_alloc_fn, big_realloc_fn,
                                 big_free_fn};
        const long long read0 = bytes_read_so_far();
        int rc;
        void *out = path;
        if (kind == 1)
            rc = nvp_chain_load_file((nvp_chain **)&out, NULL, path, &a);
        else
            rc = nvp_adam_load_file((nvp_adam **)&out, NULL, path, &a);
        const long long read1 = bytes_read_so_far();
        T_CHECK(rc == NVP_EFORMAT && out == NULL, "%s: returned %d (%s)", what, rc, nvp_errmsg());
        T_CHECK(strstr(nvp_errmsg(), why) != NULL, "%s: message '%s'", what, nvp_errmsg());
        T_CHECK(st.largest <= (size_t)64 << 10, "%s: a block of %zu bytes was asked for", what,
                st.largest);
        ck_assert_uint_eq(st.live, 0);
        if (read0 >= 0 && read1 >= 0)
            T_CHECK(read1 - read0 < (1 << 20), "%s: %lld bytes were read", what, read1 - read0);
    }
    /* A valid model through the same allocator: its size is asked for. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, model, msize), (ssize_t)msize);
    ck_assert_int_eq(close(fd), 0);
    big_alloc st = {0, 0};
    const nvp_allocator a = {NVP_ALLOCATOR_VERSION, &st, big_alloc_fn, big_realloc_fn, big_free_fn};
    nvp_chain *back = NULL;
    T_OK(nvp_chain_load_file(&back, NULL, path, &a));
    check_same_model(c, back);
    T_CHECK(st.largest >= msize, "loading a %zu-byte file asked for at most %zu bytes", msize,
            st.largest);
    nvp_chain_free(back);
    ck_assert_uint_eq(st.live, 0);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
    free(model);
    nvp_chain_free(c);
}
END_TEST

/* A training state as the file format describes it, written here
 * independently of the library's writer: header, ADAM, then RNG, AVG and
 * CLIP when present (the order the library writes them in). */
typedef struct t_state {
    uint64_t n, t;
    float lr, b1, b2, eps;
    float m[3], v[3];
    int has_rng;
    uint64_t s[4];
    uint32_t has_spare;
    double spare;
    int has_avg;
    float decay, avg[3];
    int has_clip;
    float clip;
} t_state;

static size_t put_f32s(unsigned char *p, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32(p + 4 * i, u);
    }
    return 4 * n;
}

/* Returns a new buffer of *size bytes; n may be below 3 (fewer floats). */
static unsigned char *state_bytes(const t_state *st, size_t *size)
{
    const size_t n = (size_t)(st->n < 3 ? st->n : 3);
    unsigned char *b = t_xmalloc(24 + 4 * 16 + 32 + 8 * n + 44 + 4 + 4 * n + 4);
    unsigned char pay[64];
    size_t at = 24;
    /* ADAM: u64 n, f32 lr, b1, b2, eps, u64 t, then m and v. */
    unsigned char *adam = t_xmalloc(32 + 8 * n);
    put_u64(adam, st->n);
    put_f32s(adam + 8, (const float[]){st->lr, st->b1, st->b2, st->eps}, 4);
    put_u64(adam + 24, st->t);
    put_f32s(adam + 32, st->m, n);
    put_f32s(adam + 32 + 4 * n, st->v, n);
    at += put_section(b + at, "ADAM", adam, 32 + 8 * n);
    free(adam);
    if (st->has_rng) {
        for (int i = 0; i < 4; i++)
            put_u64(pay + 8 * i, st->s[i]);
        put_u32(pay + 32, st->has_spare);
        uint64_t bits;
        memcpy(&bits, &st->spare, 8);
        put_u64(pay + 36, bits);
        at += put_section(b + at, "RNG ", pay, 44);
    }
    if (st->has_avg) {
        put_f32s(pay, &st->decay, 1);
        put_f32s(pay + 4, st->avg, n);
        at += put_section(b + at, "AVG ", pay, 4 + 4 * n);
    }
    if (st->has_clip) {
        put_f32s(pay, &st->clip, 1);
        at += put_section(b + at, "CLIP", pay, 4);
    }
    put_header(b, 2, 1 + (uint32_t)(st->has_rng + st->has_avg + st->has_clip));
    *size = at;
    return b;
}

/* Saves (o, g) into a new buffer; returns the code, *out NULL unless it
 * is NVP_OK. */
static int save_state(const nvp_adam *o, const nvp_rng *g, unsigned char **out, size_t *size)
{
    *out = NULL;
    int rc = nvp_adam_save_buffer(o, g, 0, NULL, size);
    if (rc != NVP_OK)
        return rc;
    *out = t_xmalloc(*size);
    rc = nvp_adam_save_buffer(o, g, *size, *out, size);
    if (rc != NVP_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* What a case expects of the loader. */
enum { MUST_LOAD, MUST_REFUSE, AS_SETTER };

/* The fields a case sets, one at a time, on the base state. */
enum { F_N, F_T, F_LR, F_B1, F_B2, F_EPS, F_M, F_V, F_S, F_S_ZERO, F_HAS_SPARE, F_SPARE, F_DECAY,
       F_AVG, F_CLIP };

/* Whether the setter of a setting accepts value (the loader must accept
 * exactly those: a setting a program can make must save and load). */
static int setter_accepts(int field, float value)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 1, NULL));
    const float p = 0.0f;
    int rc = NVP_EINVAL;
    switch (field) {
    case F_LR: rc = nvp_adam_set_lr(o, value); break;
    case F_B1: rc = nvp_adam_set_betas(o, value, 0.999f); break;
    case F_B2: rc = nvp_adam_set_betas(o, 0.9f, value); break;
    case F_EPS: rc = nvp_adam_set_eps(o, value); break;
    /* A section says the option is on: 0, which turns it off, has none. */
    case F_DECAY: rc = value != 0.0f ? nvp_adam_set_average(o, value, 1, &p) : NVP_EINVAL; break;
    case F_CLIP: rc = value != 0.0f ? nvp_adam_set_clip_norm(o, value) : NVP_EINVAL; break;
    default: ck_abort_msg("no setter for field %d", field);
    }
    nvp_adam_free(o);
    return rc == NVP_OK;
}

/* Issue 16, item 4: save never writes what load refuses.  Over the
 * boundary values of every field of a training state (parameter count,
 * step count, lr, betas, eps, moments, the generator's state and spare
 * normal, the average's decay and values, the clipping limit), built as
 * bytes by an independent writer: a valid value loads (a setting exactly
 * when its setter takes it) and an invalid one is refused with
 * NVP_EFORMAT; a loaded state saves back to the same bytes; and after
 * each of two steps (which may be refused, changing nothing), whatever
 * saves loads again and saves to the same bytes.  Step counts 2^64 - 3 to
 * 2^64 - 1 cover the count's saturation. */
START_TEST(test_io_training_state_round_trip_boundaries)
{
    const float tiny = FLT_TRUE_MIN, big = FLT_MAX, below1 = nextafterf(1.0f, 0.0f);
    const float nan = NAN, inf = INFINITY;
    const uint64_t top = UINT64_MAX;
    const struct {
        const char *what;
        int field;
        double value; /* for float fields (and has_spare) */
        uint64_t u;   /* for n, t and the generator's words */
        int expect;
    } cases[] = {
        {"n 1", F_N, 0, 1, MUST_LOAD},
        {"n 0", F_N, 0, 0, MUST_REFUSE},
        {"t 0", F_T, 0, 0, MUST_LOAD},
        {"t 1", F_T, 0, 1, MUST_LOAD},
        {"t 2^63", F_T, 0, (uint64_t)1 << 63, MUST_LOAD},
        {"t 2^64 - 3", F_T, 0, top - 2, MUST_LOAD},
        {"t 2^64 - 2", F_T, 0, top - 1, MUST_LOAD},
        {"t 2^64 - 1", F_T, 0, top, MUST_LOAD},
        {"lr smallest", F_LR, tiny, 0, AS_SETTER},
        {"lr FLT_MIN", F_LR, FLT_MIN, 0, AS_SETTER},
        {"lr 1", F_LR, 1.0, 0, AS_SETTER},
        {"lr largest", F_LR, big, 0, AS_SETTER},
        {"lr 0", F_LR, 0.0, 0, AS_SETTER},
        {"lr -0", F_LR, -0.0, 0, AS_SETTER},
        {"lr negative", F_LR, -1e-3, 0, AS_SETTER},
        {"lr infinite", F_LR, inf, 0, AS_SETTER},
        {"lr NaN", F_LR, nan, 0, AS_SETTER},
        {"b1 0", F_B1, 0.0, 0, AS_SETTER},
        {"b1 below 1", F_B1, below1, 0, AS_SETTER},
        {"b1 1", F_B1, 1.0, 0, AS_SETTER},
        {"b1 negative", F_B1, -tiny, 0, AS_SETTER},
        {"b1 NaN", F_B1, nan, 0, AS_SETTER},
        {"b2 0", F_B2, 0.0, 0, AS_SETTER},
        {"b2 below 1", F_B2, below1, 0, AS_SETTER},
        {"b2 1", F_B2, 1.0, 0, AS_SETTER},
        {"b2 NaN", F_B2, nan, 0, AS_SETTER},
        {"eps smallest", F_EPS, tiny, 0, AS_SETTER},
        {"eps largest", F_EPS, big, 0, AS_SETTER},
        {"eps 0", F_EPS, 0.0, 0, AS_SETTER},
        {"eps infinite", F_EPS, inf, 0, AS_SETTER},
        {"eps NaN", F_EPS, nan, 0, AS_SETTER},
        {"m largest", F_M, big, 0, MUST_LOAD},
        {"m lowest", F_M, -big, 0, MUST_LOAD},
        {"m -0", F_M, -0.0, 0, MUST_LOAD},
        {"m smallest", F_M, tiny, 0, MUST_LOAD},
        {"m infinite", F_M, inf, 0, MUST_REFUSE},
        {"m NaN", F_M, nan, 0, MUST_REFUSE},
        {"v 0", F_V, 0.0, 0, MUST_LOAD},
        {"v -0", F_V, -0.0, 0, MUST_LOAD},
        {"v smallest", F_V, tiny, 0, MUST_LOAD},
        {"v largest", F_V, big, 0, MUST_LOAD},
        {"v negative", F_V, -tiny, 0, MUST_REFUSE},
        {"v infinite", F_V, inf, 0, MUST_REFUSE},
        {"v NaN", F_V, nan, 0, MUST_REFUSE},
        {"generator words all ones", F_S, 0, top, MUST_LOAD},
        {"generator words 1", F_S, 0, 1, MUST_LOAD},
        {"generator state all zero", F_S_ZERO, 0, 0, MUST_REFUSE},
        {"no spare", F_HAS_SPARE, 0, 0, MUST_LOAD},
        {"has_spare 2", F_HAS_SPARE, 2, 0, MUST_REFUSE},
        {"spare 16", F_SPARE, 16.0, 0, MUST_LOAD},
        {"spare -16", F_SPARE, -16.0, 0, MUST_LOAD},
        {"spare above 16", F_SPARE, nextafter(16.0, 17.0), 0, MUST_REFUSE},
        {"spare NaN", F_SPARE, nan, 0, MUST_REFUSE},
        {"spare infinite", F_SPARE, -(double)inf, 0, MUST_REFUSE},
        {"decay smallest", F_DECAY, tiny, 0, AS_SETTER},
        {"decay below 1", F_DECAY, below1, 0, AS_SETTER},
        {"decay 0", F_DECAY, 0.0, 0, AS_SETTER},
        {"decay 1", F_DECAY, 1.0, 0, AS_SETTER},
        {"decay NaN", F_DECAY, nan, 0, AS_SETTER},
        {"average largest", F_AVG, big, 0, MUST_LOAD},
        {"average lowest", F_AVG, -big, 0, MUST_LOAD},
        {"average infinite", F_AVG, inf, 0, MUST_REFUSE},
        {"average NaN", F_AVG, nan, 0, MUST_REFUSE},
        {"clip smallest", F_CLIP, tiny, 0, AS_SETTER},
        {"clip largest", F_CLIP, big, 0, AS_SETTER},
        {"clip 0", F_CLIP, 0.0, 0, AS_SETTER},
        {"clip negative", F_CLIP, -1.0, 0, AS_SETTER},
        {"clip infinite", F_CLIP, inf, 0, AS_SETTER},
        {"clip NaN", F_CLIP, nan, 0, AS_SETTER},
    };
    int loaded = 0, refused = 0, saturated = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *what = cases[k].what;
        t_state st = {3, 5, 1e-3f, 0.9f, 0.999f, 1e-8f,
                      {0.1f, -0.2f, 0.3f}, {0.01f, 0.02f, 0.03f},
                      1, {1, 2, 3, 4}, 1, 0.5,
                      1, 0.9f, {1.0f, -2.0f, 3.0f},
                      1, 1.0f};
        const float fv = (float)cases[k].value;
        switch (cases[k].field) {
        case F_N: st.n = cases[k].u; break;
        case F_T: st.t = cases[k].u; break;
        case F_LR: st.lr = fv; break;
        case F_B1: st.b1 = fv; break;
        case F_B2: st.b2 = fv; break;
        case F_EPS: st.eps = fv; break;
        case F_M: st.m[1] = fv; break;
        case F_V: st.v[1] = fv; break;
        case F_S:
            for (int i = 0; i < 4; i++)
                st.s[i] = cases[k].u;
            break;
        case F_S_ZERO: memset(st.s, 0, sizeof st.s); break;
        case F_HAS_SPARE: st.has_spare = (uint32_t)cases[k].value; break;
        case F_SPARE: st.spare = cases[k].value; break;
        case F_DECAY: st.decay = fv; break;
        case F_AVG: st.avg[1] = fv; break;
        case F_CLIP: st.clip = fv; break;
        }
        const int want = cases[k].expect == AS_SETTER
                             ? (setter_accepts(cases[k].field, fv) ? MUST_LOAD : MUST_REFUSE)
                             : cases[k].expect;
        size_t size;
        unsigned char *bytes = state_bytes(&st, &size);
        nvp_adam *o = (nvp_adam *)bytes;
        nvp_rng *g = (nvp_rng *)bytes;
        int rc = nvp_adam_load_buffer(&o, &g, size, bytes, NULL);
        if (want == MUST_REFUSE) {
            T_CHECK(rc == NVP_EFORMAT && o == NULL && g == NULL,
                    "%s: an invalid state was not refused (%d: %s)", what, rc, nvp_errmsg());
            refused++;
            free(bytes);
            continue;
        }
        T_CHECK(rc == NVP_OK, "%s: a valid state was refused (%d: %s)", what, rc, nvp_errmsg());
        loaded++;
        ck_assert_uint_eq(nvp_adam_num_steps(o), st.t);
        /* It saves back to the very bytes (the two writers agree). */
        unsigned char *saved;
        size_t ssize;
        rc = save_state(o, g, &saved, &ssize);
        T_CHECK(rc == NVP_OK && ssize == size && memcmp(saved, bytes, size) == 0,
                "%s: a loaded state does not save back to its bytes (%d: %s)", what, rc,
                nvp_errmsg());
        const size_t n = (size_t)st.n;
        float p[3] = {0.1f, -0.1f, 0.2f}, p0[3];
        const float grad[3] = {0.5f, -1.0f, 2.0f};
        for (int step = 0; step < 2; step++) {
            const uint64_t t0 = nvp_adam_num_steps(o);
            memcpy(p0, p, sizeof p);
            rc = nvp_adam_step(o, n, p, grad);
            unsigned char *after;
            size_t asize;
            if (rc != NVP_OK) {
                /* A refused step changes nothing. */
                T_CHECK(rc == NVP_ENONFINITE, "%s, step %d: returned %d", what, step, rc);
                T_CHECK(memcmp(p, p0, sizeof p) == 0 && nvp_adam_num_steps(o) == t0,
                        "%s, step %d: a refused step changed the parameters or the count", what,
                        step);
                T_CHECK(save_state(o, g, &after, &asize) == NVP_OK && asize == ssize &&
                            memcmp(after, saved, asize) == 0,
                        "%s, step %d: a refused step changed the state", what, step);
                free(after);
                break;
            }
            T_CHECK(nvp_adam_num_steps(o) == (t0 == top ? top : t0 + 1),
                    "%s, step %d: the count went from %llu to %llu", what, step,
                    (unsigned long long)t0, (unsigned long long)nvp_adam_num_steps(o));
            saturated += nvp_adam_num_steps(o) == top;
            rc = save_state(o, g, &after, &asize);
            /* Saving may refuse (a step that made the average non-finite),
             * writing nothing; what it writes must load. */
            if (rc != NVP_OK) {
                T_CHECK(rc == NVP_ENONFINITE && cases[k].expect == AS_SETTER,
                        "%s, step %d: the state does not save (%d: %s)", what, step, rc,
                        nvp_errmsg());
                break;
            }
            nvp_adam *o2 = NULL;
            nvp_rng *g2 = NULL;
            rc = nvp_adam_load_buffer(&o2, &g2, asize, after, NULL);
            T_CHECK(rc == NVP_OK, "%s, step %d (count %llu): the saved state does not load (%d: %s)",
                    what, step, (unsigned long long)nvp_adam_num_steps(o), rc, nvp_errmsg());
            unsigned char *again;
            size_t gsize;
            T_OK(save_state(o2, g2, &again, &gsize));
            T_CHECK(gsize == asize && memcmp(again, after, asize) == 0,
                    "%s, step %d: save -> load -> save differs", what, step);
            free(again);
            nvp_adam_free(o2);
            nvp_rng_free(g2);
            free(saved);
            saved = after;
            ssize = asize;
        }
        free(saved);
        free(bytes);
        nvp_adam_free(o);
        nvp_rng_free(g);
    }
    /* The table covers both outcomes and the count's saturation. */
    T_CHECK(loaded >= 30 && refused >= 25 && saturated >= 3, "%d loaded, %d refused, %d saturated",
            loaded, refused, saturated);
}
END_TEST

/* Issue 16, item 1: a step whose result would not be finite is refused and
 * changes nothing -- parameters, moments, average, step count -- whatever
 * made it so; setters refuse a step size that cannot give a finite first
 * step, and so does the loader, which goes through them. */
START_TEST(test_io_step_result_must_be_finite)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 3, NULL));
    ck_assert_int_eq(nvp_adam_set_lr(o, 1e38f), NVP_EINVAL);
    ck_assert_int_eq(nvp_adam_set_lr(o, FLT_MAX), NVP_EINVAL);
    T_OK(nvp_adam_set_lr(o, 1e30f));
    T_OK(nvp_adam_set_lr(o, 1e-3f));
    T_OK(nvp_adam_set_betas(o, 1.0f - 0x1p-24f, 0.999f));
    nvp_adam_free(o);
    /* States that load, and whose next step overflows: m = FLT_MAX with
     * v = 0 (alone, and with b1 = 1 - 2^-24) at t = 0. */
    const t_state base = {3, 0, 1e-3f, 0.9f, 0.999f, 1e-8f, {0, 0, FLT_MAX}, {0, 0, 0},
                          0, {0, 0, 0, 0}, 0, 0.0, 1, 0.5f, {0, 0, 0}, 0, 0.0f};
    for (int k = 0; k < 3; k++) {
        t_state st = base;
        if (k == 1)
            st.b1 = 1.0f - 0x1p-24f;
        if (k == 2) {
            /* a huge step on one parameter with a tiny gradient */
            st.n = 1;
            st.lr = 1e37f;
            st.m[0] = 0.0f;
            st.b1 = 0.0f;
        }
        size_t size;
        unsigned char *bytes = state_bytes(&st, &size);
        T_OK(nvp_adam_load_buffer(&o, NULL, size, bytes, NULL));
        float p[3] = {0.5f, -0.25f, 3e38f}, g[3] = {1.0f, -1.0f, 0.0f};
        if (k == 2) {
            p[0] = 3.39e38f; /* moved by about lr: past FLT_MAX */
            g[0] = -1e-3f;
        }
        float p0[3];
        memcpy(p0, p, sizeof p);
        unsigned char *before = NULL, *after = NULL;
        size_t sb, sa;
        T_OK(save_state(o, NULL, &before, &sb));
        ck_assert_int_eq(nvp_adam_step(o, (size_t)st.n, p, g), NVP_ENONFINITE);
        T_CHECK(strstr(nvp_adam_errmsg(o), "would not be finite") != NULL, "case %d: '%s'", k,
                nvp_adam_errmsg(o));
        ck_assert(memcmp(p, p0, sizeof p) == 0);
        ck_assert_uint_eq(nvp_adam_num_steps(o), 0);
        T_OK(save_state(o, NULL, &after, &sa));
        T_CHECK(sa == sb && memcmp(before, after, sa) == 0, "case %d: the refused step changed the state", k);
        free(before);
        free(after);
        free(bytes);
        nvp_adam_free(o);
    }
    /* A state whose step size the setters refuse does not load. */
    t_state st = base;
    st.lr = FLT_MAX;
    size_t size;
    unsigned char *bytes = state_bytes(&st, &size);
    ck_assert_int_eq(nvp_adam_load_buffer(&o, NULL, size, bytes, NULL), NVP_EFORMAT);
    free(bytes);
    /* Through a chain: parameters near the top of the range and a step
     * size that pushes some past it. */
    const size_t hidden[1] = {8};
    enum { N = 64 };
    float data[2 * N];
    nvp_rng *r = t_rng(6300);
    T_OK(nvp_two_moons(r, N, 0.05f, data, NULL));
    nvp_chain *c = t_chain(2, 2, 1, hidden, 6301);
    const size_t np = nvp_chain_num_params(c);
    float *cp = nvp_chain_params(c);
    for (size_t q = 0; q < np; q++)
        cp[q] = q % 2 ? 3.3e38f : -3.3e38f;
    float *keep = t_xmalloc(np * sizeof *keep);
    memcpy(keep, cp, np * sizeof *keep);
    T_OK(nvp_adam_create(&o, np, NULL));
    T_OK(nvp_adam_set_lr(o, 3e37f));
    T_OK(nvp_adam_set_average(o, 0.5f, np, cp));
    unsigned char *before = NULL, *after = NULL;
    size_t sb, sa;
    T_OK(save_state(o, r, &before, &sb));
    int rc = nvp_chain_train_step(c, o, r, N, data, 16, NULL);
    /* The loss itself may already overflow; either way nothing changed. */
    T_CHECK(rc == NVP_ENONFINITE, "step returned %d", rc);
    ck_assert(memcmp(cp, keep, np * sizeof *keep) == 0);
    ck_assert_uint_eq(nvp_adam_num_steps(o), 0);
    T_OK(save_state(o, NULL, &after, &sa));
    free(before);
    T_OK(save_state(o, NULL, &before, &sb));
    T_CHECK(sa == sb && memcmp(before, after, sa) == 0, "the refused step changed the state");
    free(before);
    free(after);
    free(keep);
    nvp_adam_free(o);
    nvp_chain_free(c);
    nvp_rng_free(r);
}
END_TEST

/* Issue 16, item 2: a NaN written through nvp_chain_params into a hidden
 * unit's weight (which a ReLU can hide from the loss) is refused on entry
 * to every gradient and training call. */
START_TEST(test_io_nan_parameter_refused_in_training)
{
    const size_t hidden[1] = {8};
    float data[2 * 32];
    nvp_rng *r = t_rng(6400);
    T_OK(nvp_two_moons(r, 32, 0.05f, data, NULL));
    nvp_chain *c = t_chain(2, 2, 1, hidden, 6401);
    const size_t np = nvp_chain_num_params(c);
    nvp_chain_params(c)[1] = NAN; /* first layer, weight of unit 1 */
    float *g = t_xmalloc(np * sizeof *g);
    ck_assert_int_eq(nvp_chain_nll_grad(c, 32, data, g, NULL), NVP_ENONFINITE);
    T_CHECK(strstr(nvp_chain_errmsg(c), "parameters hold NaN") != NULL, "'%s'", nvp_chain_errmsg(c));
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, np, NULL));
    ck_assert_int_eq(nvp_chain_train_step(c, o, r, 32, data, 8, NULL), NVP_ENONFINITE);
    ck_assert_uint_eq(nvp_adam_num_steps(o), 0);
    float p[3] = {NAN, 0, 0}, gg[3] = {0, 0, 0};
    nvp_adam *o3 = NULL;
    T_OK(nvp_adam_create(&o3, 3, NULL));
    ck_assert_int_eq(nvp_adam_step(o3, 3, p, gg), NVP_ENONFINITE);
    nvp_adam_free(o3);
    nvp_adam_free(o);
    free(g);
    nvp_chain_free(c);
    nvp_rng_free(r);
}
END_TEST

/* Issue 16, item 8: the temporaries a killed save leaves ("<path>.tmp-
 * <pid>-<n>") are removed by the next save to the same path when their
 * process is gone; a live process's, and other names, are kept. */
START_TEST(test_io_stale_temporaries_removed)
{
    char dir[] = "/tmp/nvp_test_stale_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* a pid that is certainly gone: a child that has exited and was
     * reaped */
    const pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    char path[128], dead[192], live[192], other[192];
    snprintf(path, sizeof path, "%s/m.nvp", dir);
    snprintf(dead, sizeof dead, "%s.tmp-%ld-3", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp-%ld-7", path, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp-%ld-3x", path, (long)child);
    const char *names[3] = {dead, live, other};
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(names[k], "w");
        ck_assert_ptr_nonnull(f);
        fputs("partial", f);
        fclose(f);
    }
    const size_t hidden[1] = {4};
    nvp_chain *c = t_chain(2, 1, 1, hidden, 6500);
    T_OK(nvp_chain_save_file(c, NULL, path));
    T_CHECK(access(dead, F_OK) != 0, "the dead process's temporary is still there");
    T_CHECK(access(live, F_OK) == 0, "a live process's temporary was removed");
    T_CHECK(access(other, F_OK) == 0, "a file of another name was removed");
    unlink(live);
    unlink(other);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
    nvp_chain_free(c);
}
END_TEST

/* Issue 17, item 3 (library side): column names travel with the model
 * (format version 2, COLS); bad names are refused and change nothing; a
 * model without names stays version 1. */
/* A conditional chain's scaler may cover its context (dim + C axes), and
 * the scaler's names of those axes go into COLS after the chain's. */
START_TEST(test_io_context_columns)
{
    const size_t hidden[1] = {4};
    nvp_rng *rng = NULL;
    T_OK(nvp_rng_create(&rng, 6601, NULL));
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_conditional(&c, 3, 2, 2, 1, hidden, 0, rng, NULL));
    nvp_scaler *s5 = NULL, *s4 = NULL, *s3 = NULL;
    T_OK(nvp_scaler_create(&s5, 5, NULL));
    T_OK(nvp_scaler_create(&s4, 4, NULL));
    T_OK(nvp_scaler_create(&s3, 3, NULL));
    const float mean[5] = {1, 2, 3, 4, 5}, sd[5] = {0.5f, 1, 2, 3, 4};
    T_OK(nvp_scaler_set(s5, 5, mean, sd));
    const char *yn[3] = {"y1", "y2", "y3"};
    const char *all[5] = {"ignored", "ignored", "ignored", "c one", "c2"};
    const char *bad[5] = {"a", "b", "c", "d", "e\n"};
    ck_assert_ptr_null(nvp_scaler_column_name(s5, 0));
    ck_assert_int_eq(nvp_scaler_set_column_names(s5, 4, all), NVP_EDIM);
    ck_assert_int_eq(nvp_scaler_set_column_names(s5, 5, bad), NVP_EINVAL);
    T_OK(nvp_scaler_set_column_names(s5, 5, all));
    ck_assert_str_eq(nvp_scaler_column_name(s5, 3), "c one");
    ck_assert_ptr_null(nvp_scaler_column_name(s5, 5));
    size_t size = 0;
    /* dim + C or dim axes; nothing else */
    ck_assert_int_eq(nvp_chain_save_buffer(c, s4, 0, NULL, &size), NVP_EDIM);
    T_OK(nvp_chain_save_buffer(c, s3, 0, NULL, &size));
    /* context names without the chain's: no list to put them in */
    ck_assert_int_eq(nvp_chain_save_buffer(c, s5, 0, NULL, &size),
                     NVP_EINVAL);
    T_OK(nvp_chain_set_column_names(c, 3, yn));
    T_OK(nvp_chain_save_buffer(c, s5, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, s5, size, buf, &size));
    ck_assert_uint_eq(buf[8], 2);
    nvp_chain *back = NULL;
    nvp_scaler *sb = NULL;
    T_OK(nvp_chain_load_buffer(&back, &sb, size, buf, NULL));
    ck_assert_uint_eq(nvp_chain_context_dim(back), 2);
    ck_assert_uint_eq(nvp_scaler_dim(sb), 5);
    float m2[5], s2[5];
    T_OK(nvp_scaler_get(sb, 5, m2, s2));
    ck_assert(memcmp(m2, mean, sizeof m2) == 0 && memcmp(s2, sd, sizeof s2) == 0);
    for (size_t j = 0; j < 3; j++) {
        ck_assert_str_eq(nvp_chain_column_name(back, j), yn[j]);
        ck_assert_str_eq(nvp_scaler_column_name(sb, j), yn[j]);
    }
    ck_assert_str_eq(nvp_scaler_column_name(sb, 3), "c one");
    ck_assert_str_eq(nvp_scaler_column_name(sb, 4), "c2");
    /* saved again: the same bytes */
    unsigned char *again = t_xmalloc(size);
    size_t size2 = 0;
    T_OK(nvp_chain_save_buffer(back, sb, size, again, &size2));
    ck_assert(size2 == size && memcmp(again, buf, size) == 0);
    /* loaded without the scaler: the chain's names only */
    nvp_chain_free(back);
    back = NULL;
    T_OK(nvp_chain_load_buffer(&back, NULL, size, buf, NULL));
    ck_assert_str_eq(nvp_chain_column_name(back, 2), "y3");
    ck_assert_ptr_null(nvp_chain_column_name(back, 3));
    /* a scaler of dim + C axes without names: COLS holds the chain's */
    nvp_scaler_free(sb);
    sb = NULL;
    T_OK(nvp_scaler_set_column_names(s5, 0, NULL));
    T_OK(nvp_chain_save_buffer(c, s5, size, buf, &size2));
    ck_assert(size2 < size);
    nvp_chain_free(back);
    back = NULL;
    T_OK(nvp_chain_load_buffer(&back, &sb, size2, buf, NULL));
    ck_assert_uint_eq(nvp_scaler_dim(sb), 5);
    ck_assert_ptr_null(nvp_scaler_column_name(sb, 3));
    ck_assert_str_eq(nvp_chain_column_name(back, 0), "y1");
    /* an unconditional chain takes no scaler of more axes */
    nvp_chain *plain = t_chain(3, 2, 1, hidden, 6602);
    ck_assert_int_eq(nvp_chain_save_buffer(plain, s5, 0, NULL, &size),
                     NVP_EDIM);
    nvp_chain_free(plain);
    free(buf);
    free(again);
    nvp_scaler_free(sb);
    nvp_chain_free(back);
    nvp_scaler_free(s3);
    nvp_scaler_free(s4);
    nvp_scaler_free(s5);
    nvp_chain_free(c);
    nvp_rng_free(rng);
}
END_TEST

START_TEST(test_io_column_names)
{
    const size_t hidden[1] = {4};
    nvp_chain *c = t_chain(3, 2, 1, hidden, 6600);
    ck_assert_ptr_null(nvp_chain_column_name(c, 0));
    size_t size = 0;
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *plain = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, plain, &size));
    ck_assert_uint_eq(plain[8], 1);
    const char *names[3] = {"sepal length", "ünïcode", "x"};
    T_OK(nvp_chain_set_column_names(c, 3, names));
    ck_assert_str_eq(nvp_chain_column_name(c, 1), "ünïcode");
    ck_assert_ptr_null(nvp_chain_column_name(c, 3));
    const char *bad[3] = {"a", "", "c"}, *ctl[3] = {"a", "b\tc", "d"}, *nul[3] = {"a", NULL, "c"};
    ck_assert_int_eq(nvp_chain_set_column_names(c, 3, bad), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_column_names(c, 3, ctl), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_column_names(c, 3, nul), NVP_EINVAL);
    ck_assert_int_eq(nvp_chain_set_column_names(c, 2, names), NVP_EDIM);
    ck_assert_str_eq(nvp_chain_column_name(c, 0), "sepal length");
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    ck_assert_uint_eq(buf[8], 2);
    nvp_chain *back = NULL;
    T_OK(nvp_chain_load_buffer(&back, NULL, size, buf, NULL));
    for (size_t j = 0; j < 3; j++)
        ck_assert_str_eq(nvp_chain_column_name(back, j), names[j]);
    /* saved again: the same bytes */
    unsigned char *again = t_xmalloc(size);
    size_t size2 = 0;
    T_OK(nvp_chain_save_buffer(back, NULL, size, again, &size2));
    ck_assert(size2 == size && memcmp(again, buf, size) == 0);
    /* A version 2 file of couplings alone without names is not one the
     * writer makes (version 1 holds it): refused, so that what loads saves
     * back as it was.  COLS is the last section: cut it off and fix the
     * header's count and checksum. */
    {
        const size_t cols_at = size - (12 + 4 + 3 * 4 + strlen("sepal length") +
                                       strlen("ünïcode") + strlen("x") + 4);
        unsigned char *cut = t_xmalloc(cols_at);
        memcpy(cut, buf, cols_at);
        ck_assert_int_eq(memcmp(cut + cols_at - 4 - 0, buf + cols_at - 4, 4), 0);
        put_u32(cut + 16, 2);
        put_u32(cut + 20, crc32_bitwise(cut, 20));
        nvp_chain *x = NULL;
        ck_assert_int_eq(nvp_chain_load_buffer(&x, NULL, cols_at, cut, NULL), NVP_EFORMAT);
        T_CHECK(strstr(nvp_errmsg(), "version 1 holds it") != NULL, "'%s'", nvp_errmsg());
        free(cut);
    }
    /* names removed: version 1 again, the plain bytes */
    T_OK(nvp_chain_set_column_names(back, 0, NULL));
    T_OK(nvp_chain_save_buffer(back, NULL, size, again, &size2));
    ck_assert_uint_eq(again[8], 1);
    free(plain);
    free(buf);
    free(again);
    nvp_chain_free(back);
    nvp_chain_free(c);
}
END_TEST

/* Save never writes what load refuses, at two edges found in review: an
 * optimizer with b1 = 0 and a step size only that b1 allows (the loader
 * must set the betas before the step size), and a chain over one
 * dimension (no coupling fits it; ActNorm and linear layers do). */
START_TEST(test_io_saved_edges_load)
{
    nvp_adam *o = NULL;
    T_OK(nvp_adam_create(&o, 2, NULL));
    T_OK(nvp_adam_set_betas(o, 0.0f, 0.999f));
    T_OK(nvp_adam_set_lr(o, 1e38f));
    unsigned char *buf = NULL;
    size_t size;
    T_OK(save_state(o, NULL, &buf, &size));
    nvp_adam *back = NULL;
    T_OK(nvp_adam_load_buffer(&back, NULL, size, buf, NULL));
    ck_assert(nvp_adam_lr(back) == 1e38f && nvp_adam_beta1(back) == 0.0f);
    nvp_adam_free(back);
    nvp_adam_free(o);
    free(buf);

    nvp_base *b = NULL;
    T_OK(nvp_base_create_normal(&b, 1, NULL));
    nvp_layer *l[2];
    T_OK(nvp_layer_create_actnorm(&l[0], 1, NULL));
    T_OK(nvp_layer_create_linear(&l[1], 1, NULL));
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_from_layers(&c, b, 2, l, NULL));
    const float data[5] = {1.0f, 2.0f, 4.0f, 3.5f, -1.0f};
    T_OK(nvp_chain_init_from_data(c, 5, data));
    T_OK(nvp_chain_save_buffer(c, NULL, 0, NULL, &size));
    buf = t_xmalloc(size);
    T_OK(nvp_chain_save_buffer(c, NULL, size, buf, &size));
    nvp_chain *cb = NULL;
    T_OK(nvp_chain_load_buffer(&cb, NULL, size, buf, NULL));
    float lp0[5], lp1[5];
    T_OK(nvp_chain_log_prob(c, 5, data, lp0));
    T_OK(nvp_chain_log_prob(cb, 5, data, lp1));
    ck_assert(memcmp(lp0, lp1, sizeof lp0) == 0);
    nvp_chain_free(cb);
    nvp_chain_free(c);
    free(buf);
}
END_TEST

Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("save_load");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_io_chain_buffer_round_trip);
    tcase_add_test(tc, test_io_chain_hostile_input);
    tcase_add_test(tc, test_io_files);
    tcase_add_test(tc, test_io_special_paths);
    tcase_add_test(tc, test_io_file_modes_and_refusals);
    tcase_add_test(tc, test_io_training_resume);
    tcase_add_test(tc, test_io_average_section_layout);
    tcase_add_test(tc, test_io_clip_section);
    tcase_add_test(tc, test_io_nonfinite_not_saved);
    tcase_add_test(tc, test_io_step_result_must_be_finite);
    tcase_add_test(tc, test_io_nan_parameter_refused_in_training);
    tcase_add_test(tc, test_io_stale_temporaries_removed);
    tcase_add_test(tc, test_io_column_names);
    tcase_add_test(tc, test_io_context_columns);
    tcase_add_test(tc, test_io_saved_edges_load);
    tcase_add_test(tc, test_io_scaler_section_always_checked);
    tcase_add_test(tc, test_io_sparse_file_refused_before_reading);
    tcase_add_test(tc, test_io_training_state_round_trip_boundaries);
    suite_add_tcase(s, tc);
    return s;
}
