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
 * The perf event for tracepoint id (of the given kind) on one thread.
 * Entries and exits from L2 are sampled, raw data only, into a ring
 * that overwrites its oldest records: only the newest matter.  An exit
 * reflected to L1 is only counted: the verdict never needs its record
 * (a vCPU stopped in L1 is not judged, and one back in L2 got there
 * through a VMRUN, which is recorded), and a count is all a stop's
 * settling reads, without the cost of a sample per reflected exit.
 * Each is opened disabled: an enabled event counts from its opening, but
 * samples only once its ring exists, and a count without its record
 * would pass a stop's settling with nothing to judge.
 */
void nested_tracefs_perf_attr(struct perf_event_attr *attr,
                              NestedTraceKind kind, uint16_t id);

#endif
