/*
 * Self-test of the harness against a real qemu-system-x86_64 (skipped when
 * none is installed): start, QMP replies vs events, errors, SCM_RIGHTS fd
 * passing with add-fd, and exit handling.
 */
#include "libqtest.h"

#include <fcntl.h>
#include <unistd.h>

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"

static const char *qemu_binary(void)
{
    const char *env = g_getenv("QTEST_QEMU_BINARY");

    return env && *env ? env : QEMU_BIN;
}

static QTestState *start_qemu(void)
{
    return qtest_init_bin(qemu_binary(),
                          "-machine none -nodefaults -display none -S");
}

static void test_qmp_basics(void)
{
    QTestState *s;
    g_autoptr(JsonObject) st = NULL;
    g_autoptr(JsonObject) ev = NULL;
    g_autofree char *desc = NULL;
    g_autofree char *klass = NULL;

    if (!g_file_test(qemu_binary(), G_FILE_TEST_IS_EXECUTABLE)) {
        g_test_skip("qemu-system-x86_64 not installed");
        return;
    }
    s = start_qemu();
    st = qtest_qmp_assert_success_ref(s, "{'execute': 'query-status'}");
    g_assert_cmpstr(qtest_json_get_str(st, "status"), ==, "prelaunch");
    g_assert_false(qtest_json_get_bool(st, "running", true));

    qtest_qmp_assert_success(s, "{'execute': 'cont'}");
    ev = qtest_qmp_eventwait_ref(s, "RESUME");
    g_assert_cmpstr(qtest_json_get_str(ev, "event"), ==, "RESUME");

    desc = qtest_qmp_expect_error_class(s, &klass,
                                        "{'execute': 'no-such-command'}");
    g_assert_cmpstr(klass, ==, "CommandNotFound");
    g_assert_cmpstr(desc, ==, "The command no-such-command has not been found");
    qtest_quit(s);
}

static void test_fd_passing(void)
{
    QTestState *s;
    g_autofree char *dir = NULL;
    g_autofree char *path = NULL;
    g_autofree char *desc = NULL;
    g_autoptr(JsonObject) info = NULL;
    g_autoptr(JsonNode) sets = NULL;
    g_autoptr(JsonNode) empty = NULL;
    JsonObject *set;
    int fd;

    if (!g_file_test(qemu_binary(), G_FILE_TEST_IS_EXECUTABLE)) {
        g_test_skip("qemu-system-x86_64 not installed");
        return;
    }
    dir = qtest_mkdtemp("selftest");
    path = g_build_filename(dir, "f", NULL);
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    s = start_qemu();

    desc = qtest_qmp_expect_error(s, "{'execute': 'add-fd', "
                                  "'arguments': {'fdset-id': 1}}");
    g_assert_cmpstr(desc, ==, "No file descriptor supplied via SCM_RIGHTS");

    {
        g_autoptr(JsonNode) r = qtest_qmp_fds(s, &fd, 1,
            "{'execute': 'add-fd', 'arguments': {'fdset-id': 1, "
            "'opaque': 'it\\'s \"mine\"'}}");
        info = json_object_ref(qtest_json_get_obj(json_node_get_object(r),
                                                  "return"));
    }
    g_assert_cmpint(qtest_json_get_int(info, "fdset-id", -1), ==, 1);
    g_assert_cmpint(qtest_json_get_int(info, "fd", -1), >=, 0);

    sets = qtest_qmp_assert_success_node(s, "{'execute': 'query-fdsets'}");
    g_assert_true(JSON_NODE_HOLDS_ARRAY(sets));
    g_assert_cmpuint(json_array_get_length(json_node_get_array(sets)), ==, 1);
    set = json_array_get_object_element(json_node_get_array(sets), 0);
    g_assert_cmpint(qtest_json_get_int(set, "fdset-id", -1), ==, 1);
    {
        JsonArray *fds = json_object_get_array_member(set, "fds");
        JsonObject *f0 = json_array_get_object_element(fds, 0);

        g_assert_cmpstr(qtest_json_get_str(f0, "opaque"), ==,
                        "it's \"mine\"");
    }
    /* QEMU 7.2 only releases removed fds while the VM runs. */
    qtest_qmp_assert_success(s, "{'execute': 'cont'}");
    qtest_qmp_assert_success(s, "{'execute': 'remove-fd', "
                             "'arguments': {'fdset-id': 1}}");
    empty = qtest_qmp_assert_success_node(s, "{'execute': 'query-fdsets'}");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(empty)), ==, 0);
    close(fd);
    qtest_quit(s);
    qtest_rmtree(dir);
}

static void test_exit_status(void)
{
    QTestState *s;

    if (!g_file_test(qemu_binary(), G_FILE_TEST_IS_EXECUTABLE)) {
        g_test_skip("qemu-system-x86_64 not installed");
        return;
    }
    s = start_qemu();
    g_assert_true(qtest_alive(s));
    g_assert_cmpint(qtest_wait_exit(s, 1), ==, -1);
    qtest_qmp_send(s, "{'execute': 'quit'}");
    g_assert_cmpint(qtest_wait_exit(s, 0), ==, 0);
    g_assert_false(qtest_alive(s));
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/libqtest/qemu/qmp-basics", test_qmp_basics);
    g_test_add_func("/libqtest/qemu/fd-passing", test_fd_passing);
    g_test_add_func("/libqtest/qemu/exit-status", test_exit_status);
    return g_test_run();
}
