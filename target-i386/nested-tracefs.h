/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * KVM's nested tracepoints as the kernel describes them (tracefs), and
 * the perf events that record them: one definition for QEMU's observer
 * (mirror/nested-observer.c) and for the privileged helper that opens
 * them for an unprivileged QEMU (scripts/observer-helper/).
 */

#ifndef NESTED_TRACEFS_H
#define NESTED_TRACEFS_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <linux/perf_event.h>

#include "nested-window.h"

/*
 * Read the tracefs "format" text of each tracepoint kind (the first of
 * its names that the kernel has) into texts[], g_free()d by the caller;
 * fails naming what it could not read.
 */
bool nested_tracefs_read_formats(char *texts[NESTED_TRACE__MAX],
                                 GError **errp);

/* Free what nested_tracefs_read_formats() read; NULL entries are skipped */
void nested_tracefs_free_formats(char *texts[NESTED_TRACE__MAX]);

/* Parse texts[] from nested_tracefs_read_formats() into fmt */
bool nested_tracefs_parse_formats(NestedTraceFormat *fmt,
                                  char *const texts[NESTED_TRACE__MAX],
                                  GError **errp);

/*
 * The perf event that records tracepoint id for one thread: every
 * occurrence, raw data only, into a ring that overwrites its oldest
 * records (only the newest matter).
 */
void nested_tracefs_perf_attr(struct perf_event_attr *attr, uint16_t id);

#endif
