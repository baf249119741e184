/*
 * GError helpers in the one MAPRAM_ERROR domain whose codes are QMP
 * error classes, so the monitor can answer with the class unchanged.
 */
#include <stdarg.h>
#include <string.h>

#include "util/error.h"

/*
 * Not G_DEFINE_QUARK: its lazy init is a plain racy store, and errors are
 * made on every thread.  g_quark_from_static_string() is thread-safe and
 * returns the same quark every time; the cache is atomic.
 */
GQuark mapram_error_quark(void)
{
    static GQuark q;
    GQuark v = __atomic_load_n(&q, __ATOMIC_ACQUIRE);

    if (!v) {
        v = g_quark_from_static_string("mapram-error-quark");
        __atomic_store_n(&q, v, __ATOMIC_RELEASE);
    }
    return v;
}

const char *qmp_error_class_name(int code)
{
    /* Indexed by QmpErrorClass; anything unknown reports as generic. */
    static const char *const names[] = {
        [QMP_ERROR_GENERIC] = "GenericError",
        [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
        [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
        [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    };

    if (code < 0 || (size_t)code >= G_N_ELEMENTS(names)) {
        return names[QMP_ERROR_GENERIC];
    }
    return names[code];
}

void error_setg_errno(GError **errp, int os_errno, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    int saved_errno = errno;

    if (!errp) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_GENERIC, "%s: %s", msg,
                g_strerror(os_errno));
    /* Callers often still test errno after reporting it. */
    errno = saved_errno;
}

void error_propagate(GError **dst, GError *src)
{
    if (!src) {
        return;
    }
    if (dst && !*dst) {
        *dst = src;
    } else {
        g_error_free(src);
    }
}
