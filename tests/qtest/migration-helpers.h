/*
 * QMP wrappers for migration tests: capabilities, parameters, starting a
 * migration on either side and waiting for its states, and reading guest
 * memory through pmemsave.  Everything asserts: a failed command or a
 * state that never comes fails the test with the reply or error-desc.
 *
 *   migrate_set_capability(from, "mapped-ram", true);
 *   migrate_qmp(from, "file:/x", NULL);
 *   wait_for_migration_complete(from);
 *   migrate_incoming_qmp(to, "file:/x", NULL);
 *   wait_for_migration_complete(to);
 */
#ifndef TESTS_QTEST_MIGRATION_HELPERS_H
#define TESTS_QTEST_MIGRATION_HELPERS_H

#include "libqtest.h"

#include <stdint.h>

void migrate_set_capability(QTestState *who, const char *cap, bool on);
bool migrate_get_capability(QTestState *who, const char *cap);
void migrate_set_parameter_int(QTestState *who, const char *name,
                               long long value);
void migrate_set_parameter_bool(QTestState *who, const char *name, bool value);
void migrate_set_parameter_str(QTestState *who, const char *name,
                               const char *value);
long long migrate_get_parameter_int(QTestState *who, const char *name);

/* Converge at once: max-bandwidth 1 GB/s, downtime-limit 30 s. */
void migrate_ensure_converge(QTestState *who);
/* Never converge: max-bandwidth 3 MB/s, downtime-limit 1 ms. */
void migrate_ensure_non_converge(QTestState *who);

/* query-migrate's return object (new reference). */
JsonObject *migrate_query(QTestState *who);
/* Its status ("none" when the object is empty; g_free). */
char *migrate_query_status(QTestState *who);

/*
 * migrate with @uri, or with @channels_json (a JSON array text) when @uri is
 * NULL; asserts success.  _expect_error returns the error desc instead.
 */
void migrate_qmp(QTestState *who, const char *uri, const char *channels_json);
char *migrate_qmp_expect_error(QTestState *who, const char *uri,
                               const char *channels_json);

/*
 * migrate-incoming (@extra_json: more members such as
 * "'exit-on-error': false", or NULL), then wait for MIGRATION "setup".
 */
void migrate_incoming_qmp(QTestState *to, const char *uri,
                          const char *channels_json, const char *extra_json);
char *migrate_incoming_qmp_expect_error(QTestState *to, const char *uri,
                                        const char *extra_json);

/*
 * Poll query-migrate until the status is @goal; fails on any status of the
 * NULL-terminated @ungoals (default: failed and cancelled) with error-desc.
 */
void wait_for_migration_status(QTestState *who, const char *goal,
                               const char *const *ungoals);
void wait_for_migration_complete(QTestState *who);
/* Wait for status failed (returns error-desc, g_free). */
char *wait_for_migration_fail(QTestState *who);
/* Wait until the source starts its second pass (live migrations). */
void wait_for_migration_pass(QTestState *who);

/* query-status: "running", "paused", "postmigrate", ... (g_free). */
char *query_runstate(QTestState *who);
bool runstate_is_running(QTestState *who);

/* Guest-physical memory read through pmemsave into @tmpdir (g_free). */
uint8_t *guest_memread(QTestState *who, const char *tmpdir, uint64_t addr,
                       uint64_t size);
uint8_t guest_memread_u8(QTestState *who, const char *tmpdir, uint64_t addr);

/* Bytes of a whole file (asserts it can be read; g_free). */
uint8_t *read_whole_file(const char *path, size_t *len);

#endif
