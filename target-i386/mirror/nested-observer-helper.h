/*
 * nested-kvm: the observer's client of nested-kvm-observer-helper
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_OBSERVER_HELPER_H
#define TARGET_I386_NESTED_OBSERVER_HELPER_H

#include "../nested-window.h"

/* The tracefs format texts, g_free()d by the caller, from the helper */
bool nested_observer_helper_formats(const char *path,
                                    char *texts[NESTED_TRACE__MAX],
                                    Error **errp);

/* The perf events of the vCPU thread tid, opened by the helper */
bool nested_observer_helper_open(const char *path, int tid, int cpu_index,
                                 int fds[NESTED_TRACE__MAX], Error **errp);

#endif
