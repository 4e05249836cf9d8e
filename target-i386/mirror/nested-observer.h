/*
 * nested-kvm: one vCPU's view of KVM's nested tracepoints
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_OBSERVER_H
#define TARGET_I386_NESTED_OBSERVER_H

#include "../nested-window.h"

typedef struct NestedObserver NestedObserver;

/*
 * The record layouts of kvm_nested_vmenter, kvm_nested_vmexit and
 * kvm_nested_vmexit_inject, from tracefs: the same for every vCPU, so
 * read once per migration.  Fails, naming the file, when tracefs is not
 * readable by this process.
 */
bool nested_observer_load_format(NestedTraceFormat *fmt, Error **errp);

/*
 * Start recording those tracepoints for the thread tid (vCPU cpu_index,
 * named in errors).  Fails, naming what is missing, when perf_event_open
 * is not available to this process.
 */
NestedObserver *nested_observer_new(const NestedTraceFormat *fmt, int tid,
                                    int cpu_index, Error **errp);
void nested_observer_free(NestedObserver *o);

/*
 * Judge the records so far (nested-window.c).  Call it only while the
 * vCPU is stopped: its thread writes the ring while it runs.
 */
void nested_observer_judge(NestedObserver *o, NestedWindow *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(NestedObserver, nested_observer_free)

#endif
