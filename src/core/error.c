/* SPDX-License-Identifier: MIT */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The calling thread's most recent failure message. */
static _Thread_local char tls_msg[NVP_ERRMSG_CAP];
/* Scratch for nvp_<type>_errmsg(): a copy of a handle's box. */
static _Thread_local char tls_copy[NVP_ERRMSG_CAP];

const char *nvp_strerror(int code)
{
    switch (code) {
    case NVP_OK: return "success";
    case NVP_EINVAL: return "invalid argument";
    case NVP_EDIM: return "dimension or length mismatch";
    case NVP_ENOMEM: return "out of memory";
    case NVP_EOVERFLOW: return "size too large";
    case NVP_ENONFINITE: return "non-finite value";
    case NVP_EIO: return "input/output error";
    case NVP_EFORMAT: return "malformed or corrupt data";
    case NVP_EVERSION: return "unsupported format version";
    case NVP_ETHREAD: return "could not start a thread";
    case NVP_EBUFSIZE: return "buffer too small";
    case NVP_EUNSUPPORTED: return "unsupported by this CPU";
    case NVP_EBUSY: return "busy: in use by another call";
    default: return "unknown error";
    }
}

const char *nvp_errmsg(void) { return tls_msg; }

void nvp__errbox_init(nvp_errbox *box)
{
    pthread_mutex_init(&box->lock, NULL);
    box->msg[0] = '\0';
}

void nvp__errbox_destroy(nvp_errbox *box) { pthread_mutex_destroy(&box->lock); }

const char *nvp__errbox_read(const nvp_errbox *cbox)
{
    if (!cbox) {
        tls_copy[0] = '\0';
        return tls_copy;
    }
    nvp_errbox *box = (nvp_errbox *)cbox;
    pthread_mutex_lock(&box->lock);
    memcpy(tls_copy, box->msg, NVP_ERRMSG_CAP);
    pthread_mutex_unlock(&box->lock);
    return tls_copy;
}

int nvp__fail(const nvp_errbox *cbox, int code, const char *fmt, ...)
{
    /* Format into a local buffer first: the arguments may include the
     * thread's previous message (nvp_errmsg()), which tls_msg holds. */
    char msg[NVP_ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        msg[0] = '\0';
    memcpy(tls_msg, msg, sizeof msg);
    if (cbox) {
        /* Every handle lives in memory the library allocated, never in a
         * const object, so writing through the cast is well defined. */
        nvp_errbox *box = (nvp_errbox *)cbox;
        pthread_mutex_lock(&box->lock);
        memcpy(box->msg, tls_msg, NVP_ERRMSG_CAP);
        pthread_mutex_unlock(&box->lock);
    }
    return code;
}

int nvp__fail_in(const nvp_errbox *box, int rc, const char *fn)
{
    return nvp__fail(box, rc, "%s: %s", fn, tls_msg);
}
