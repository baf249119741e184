/*
 * The serial port guest programs print to ('A', 'B').
 *
 * Its device state is the number of bytes the guest has written so far
 * (out_pos).  The output itself is not migrated: a destination appends
 * to its own -serial file, as QEMU's does.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "migration/migration.h"
#include "util/error.h"
#include "system-internal.h"

/*
 * fd: immutable after serial_init (-1 for "none"/"null").
 * out_pos: updated by vCPU threads (atomic), saved while they are parked.
 */
typedef struct SerialState {
    int fd;
    bool close_fd;
    uint64_t out_pos;
} SerialState;

static SerialState serial = { .fd = -1 };

static const VMStateDescription vmstate_serial = {
    .name = "serial",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(out_pos, SerialState),
        VMSTATE_END_OF_LIST()
    },
};

static int serial_open(const char *spec, bool *close_fd, GError **errp)
{
    const char *path;
    int fd;

    *close_fd = false;
    if (!spec || strcmp(spec, "none") == 0 || strcmp(spec, "null") == 0) {
        return -1;
    }
    if (strcmp(spec, "stdio") == 0) {
        return STDOUT_FILENO;
    }
    if (!g_str_has_prefix(spec, "file:")) {
        g_autofree char *name = g_strndup(spec, strcspn(spec, ":,"));
        error_setg(errp, "'%s' is not a valid char driver name", name);
        return -2;
    }
    path = spec + strlen("file:");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
        return -2;
    }
    *close_fd = true;
    return fd;
}

bool serial_init(const char *spec, Migration *mig, GError **errp)
{
    int fd = serial_open(spec, &serial.close_fd, errp);

    if (fd == -2) {
        return false;
    }
    serial.fd = fd;
    migration_register_vmstate(mig, "serial", 0, &vmstate_serial, &serial);
    return true;
}

/* Unbuffered, so a test reading the file sees every byte at once. */
void serial_putc(char c)
{
    __atomic_fetch_add(&serial.out_pos, 1, __ATOMIC_RELAXED);
    if (serial.fd < 0) {
        return;
    }
    while (write(serial.fd, &c, 1) < 0 && errno == EINTR) {
    }
}

void serial_cleanup(void)
{
    if (serial.close_fd) {
        close(serial.fd);
    }
    serial.fd = -1;
    serial.close_fd = false;
}
