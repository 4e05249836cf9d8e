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
 * kvm_nested_vmexit_inject, from tracefs, or from the observer helper
 * listening at helper when that is not NULL: the same for every vCPU, so
 * read once per arming.  Fails naming what could not be read or reached.
 */
bool nested_observer_load_format(NestedTraceFormat *fmt, const char *helper,
                                 Error **errp);

/*
 * Open those tracepoints for the thread tid (vCPU cpu_index, named in
 * errors), here or, with helper, through the observer helper
 * (docs/libvirt.rst), with the ring they record into.  Fails naming
 * what is missing: the privilege to open them, or the helper.  They
 * record nothing until nested_observer_enable(): an observer opened
 * ahead costs its thread nothing while it waits.
 */
NestedObserver *nested_observer_new(const NestedTraceFormat *fmt,
                                    const char *helper, int tid,
                                    int cpu_index, Error **errp);
/*
 * Start recording, in an order that never leaves a VMRUN's record newest
 * while an exit after it went unrecorded.
 */
bool nested_observer_enable(NestedObserver *o, Error **errp);
void nested_observer_free(NestedObserver *o);

/*
 * Whether the thread crossed a boundary of L1's delivery chains since the
 * observer was created: an L1 VMRUN or an exit reflected to L1.  From
 * then on every chain is recorded from its start, so that a stop can be
 * judged.  Safe while the thread runs.
 */
bool nested_observer_crossed_boundary(NestedObserver *o);

/*
 * Void the records so far: the vCPU's state was replaced (a load or a
 * reset) and they no longer describe it.  Call it only while the vCPU
 * is stopped.
 */
void nested_observer_forget(NestedObserver *o);

/*
 * Judge the records so far (nested-window.c).  Call it only while the
 * vCPU is stopped: its thread writes the ring while it runs.
 */
void nested_observer_judge(NestedObserver *o, NestedVendor vendor,
                           NestedWindow *w);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(NestedObserver, nested_observer_free)

#endif
