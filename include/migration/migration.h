/*
 * The migration subsystem as seen by the VM (system/).
 *
 *   migration_init();                      after RAM blocks and devices exist,
 *                                          before the monitor starts; registers
 *                                          the "ram" handler, "globalstate", and
 *                                          the migration QMP commands
 *   migration_incoming_cmdline(arg, errp)  for -incoming URI|defer
 *   migration_shutdown();                  at quit: cancels and joins threads
 *
 * Incoming completion: after a successful load the migration code decides
 * the run state from "globalstate" (§5.6 of the reference) and the -S flag
 * given here.  With exit-on-error (the default) a failed load ends the
 * process with status 1 through vm_request_exit(1).
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <glib.h>
#include <stdbool.h>

void migration_init(void);
void migration_shutdown(void);

/* -incoming: "defer" or a URI; start_paused is -S. */
bool migration_incoming_cmdline(const char *arg, bool start_paused, GError **errp);
bool migration_incoming_pending(void);  /* -incoming given and not yet completed */

/* Properties as -global migration.NAME=VALUE */
bool migration_set_global_property(const char *name, const char *value, GError **errp);

/* Machine type name written to the configuration section. */
void migration_set_machine_type(const char *name);

#endif
