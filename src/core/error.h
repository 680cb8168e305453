/* SPDX-License-Identifier: MIT */
/* Error reporting: a thread-local message for nvp_errmsg() and a
 * per-handle message box for nvp_<type>_errmsg(). */
#ifndef NVP_ERROR_H
#define NVP_ERROR_H

#include <pthread.h>

#include "nvpflow.h"

#define NVP_ERRMSG_CAP 256

/* Embedded in every handle.  Const calls on a shared handle may fail
 * concurrently, so the box has its own lock; readers copy the message out
 * into thread-local storage under that lock. */
typedef struct nvp_errbox {
    pthread_mutex_t lock;
    char msg[NVP_ERRMSG_CAP];
} nvp_errbox;

void nvp__errbox_init(nvp_errbox *box);
void nvp__errbox_destroy(nvp_errbox *box);
/* Copies the box's message into the calling thread's buffer and returns
 * it; box may be NULL (gives ""). */
const char *nvp__errbox_read(const nvp_errbox *box);

/* Records a failure: formats the message, stores it in the thread-local
 * buffer and in box (when not NULL), and returns code.  The box is taken
 * as const because const handles report failures too; it is only ever
 * written under its lock. */
int nvp__fail(const nvp_errbox *box, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Records that fn failed because a call it made failed with rc (whose
 * message is the thread's last one): "fn: <that message>".  Returns rc. */
int nvp__fail_in(const nvp_errbox *box, int rc, const char *fn);

/* Helpers for the argument checks every public function starts with.
 * They expect a local `const nvp_errbox *eb` (may be NULL). */
#define NVP_REQUIRE(cond, code, ...)                                       \
    do {                                                                   \
        if (!(cond))                                                       \
            return nvp__fail(eb, (code), __VA_ARGS__);                     \
    } while (0)
#define NVP_REQUIRE_PTR(p)                                                 \
    NVP_REQUIRE((p) != NULL, NVP_EINVAL, "%s: %s is NULL", __func__, #p)
/* The same in a helper that names the public call in a local `fn`. */
#define NVP_REQUIRE_PTR_FN(p)                                              \
    NVP_REQUIRE((p) != NULL, NVP_EINVAL, "%s: %s is NULL", fn, #p)

#endif
