/*
 * Errors: every failure is a GError in MAPRAM_ERROR, set once where it
 * happens.  The code is the QMP error class (QMP_ERROR_*), so a GError can
 * be turned into a QMP error reply without translation.
 *
 *   if (fd < 0) {
 *       error_setg_errno(errp, errno, "Could not open '%s'", path);
 *       return false;
 *   }
 */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include <glib.h>
#include <errno.h>

#define MAPRAM_ERROR (mapram_error_quark())
GQuark mapram_error_quark(void);

typedef enum {
    QMP_ERROR_GENERIC = 0,          /* "GenericError" */
    QMP_ERROR_COMMAND_NOT_FOUND,    /* "CommandNotFound" */
    QMP_ERROR_DEVICE_NOT_ACTIVE,    /* "DeviceNotActive" */
    QMP_ERROR_DEVICE_NOT_FOUND,     /* "DeviceNotFound" */
} QmpErrorClass;

const char *qmp_error_class_name(int code);

/* g_set_error(errp, MAPRAM_ERROR, QMP_ERROR_GENERIC, fmt, ...) */
#define error_setg(errp, ...) \
    g_set_error((errp), MAPRAM_ERROR, QMP_ERROR_GENERIC, __VA_ARGS__)

/* Like error_setg, then appends ": <strerror(os_errno)>". */
void error_setg_errno(GError **errp, int os_errno, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Prefix an existing error (no-op when errp or *errp is NULL). */
#define error_prepend(errp, ...) g_prefix_error((errp), __VA_ARGS__)

/* Move src into *dst if *dst is unset, otherwise free src (first error wins). */
void error_propagate(GError **dst, GError *src);

#endif
