/*
 * qemu_open: O_CLOEXEC always, QEMU's error texts, and /dev/fdset/N
 * names routed to the registered provider (and only those).
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/osdep.h"

static char *last_open_name;
static int last_open_flags;
static int last_closed_fd = -1;

static int fake_fdset_open(const char *name, int flags, GError **errp)
{
    g_free(last_open_name);
    last_open_name = g_strdup(name);
    last_open_flags = flags;
    if (strcmp(name, "/dev/fdset/1") != 0) {
        error_setg(errp, "Could not parse fdset %s", name + strlen("/dev/fdset/"));
        return -1;
    }
    return dup(0);
}

static void fake_fdset_close(int fd)
{
    last_closed_fd = fd;
}

static const FdsetProvider fake_provider = {
    .open = fake_fdset_open,
    .close = fake_fdset_close,
};

static void test_open_errors_and_cloexec(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("test-osdep-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    g_autofree char *missing = g_build_filename(dir, "a", "b", NULL);
    g_autofree char *want = NULL;
    int fd;

    g_assert_cmpint(qemu_open(missing, O_RDONLY, 0, &err), ==, -1);
    want = g_strdup_printf("Could not open '%s': No such file or directory", missing);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    g_free(want);
    g_assert_cmpint(qemu_open(missing, O_RDWR | O_CREAT, 0600, &err), ==, -1);
    want = g_strdup_printf("Could not create '%s': No such file or directory", missing);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);

    fd = qemu_open(path, O_RDWR | O_CREAT, 0600, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    g_assert_cmpint(qemu_close(fd), ==, 0);
    unlink(path);
    rmdir(dir);
}

static void test_fdset_provider(void)
{
    g_autoptr(GError) err = NULL;
    int fd;

    qemu_set_fdset_provider(&fake_provider);
    fd = qemu_open("/dev/fdset/1", O_WRONLY | O_CREAT, 0600, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpstr(last_open_name, ==, "/dev/fdset/1");
    g_assert_cmpint(last_open_flags & (O_ACCMODE | O_CREAT), ==, O_WRONLY | O_CREAT);
    g_assert_true(last_open_flags & O_CLOEXEC);
    g_assert_cmpint(qemu_close(fd), ==, 0);
    g_assert_cmpint(last_closed_fd, ==, fd);

    /* The provider's message goes out unchanged. */
    g_assert_cmpint(qemu_open("/dev/fdset/x", O_RDONLY, 0, &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "Could not parse fdset x");
    g_clear_error(&err);

    /* Other /dev paths are plain opens. */
    g_free(last_open_name);
    last_open_name = NULL;
    fd = qemu_open("/dev/null", O_RDONLY, 0, &err);
    g_assert_no_error(err);
    g_assert_null(last_open_name);
    qemu_close(fd);
    qemu_set_fdset_provider(NULL);
}

static void test_memalign(void)
{
    void *p = qemu_memalign(4096, 12345);

    g_assert_cmpuint((uintptr_t)p % 4096, ==, 0);
    memset(p, 1, 12345);
    qemu_vfree(p);
    g_assert_cmpuint(qemu_real_host_page_size(), ==, (size_t)sysconf(_SC_PAGESIZE));
}

static void test_error_helpers(void)
{
    GError *dst = NULL;
    GError *err = NULL;

    errno = EBADF;
    error_setg_errno(&err, ENOENT, "Could not open '%s'", "x");
    g_assert_cmpint(errno, ==, EBADF);
    g_assert_cmpstr(err->message, ==, "Could not open 'x': No such file or directory");
    g_assert_error(err, MAPRAM_ERROR, QMP_ERROR_GENERIC);
    error_propagate(&dst, err);
    g_assert_true(dst == err);
    err = g_error_new(MAPRAM_ERROR, QMP_ERROR_GENERIC, "second");
    error_propagate(&dst, err);             /* first wins; second freed */
    g_assert_cmpstr(dst->message, ==, "Could not open 'x': No such file or directory");
    error_propagate(NULL, g_error_new(MAPRAM_ERROR, 0, "dropped"));
    error_propagate(&dst, NULL);
    g_clear_error(&dst);
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_GENERIC), ==, "GenericError");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_COMMAND_NOT_FOUND), ==, "CommandNotFound");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_DEVICE_NOT_ACTIVE), ==, "DeviceNotActive");
    g_assert_cmpstr(qmp_error_class_name(QMP_ERROR_DEVICE_NOT_FOUND), ==, "DeviceNotFound");
    g_assert_cmpstr(qmp_error_class_name(99), ==, "GenericError");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/osdep/open-errors-and-cloexec", test_open_errors_and_cloexec);
    g_test_add_func("/util/osdep/fdset-provider", test_fdset_provider);
    g_test_add_func("/util/osdep/memalign", test_memalign);
    g_test_add_func("/util/error/helpers", test_error_helpers);
    return g_test_run();
}
