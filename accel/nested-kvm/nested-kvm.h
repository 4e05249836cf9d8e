/*
 * nested-kvm accelerator: KVM plus a mirror of injected-event state
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef ACCEL_NESTED_KVM_H
#define ACCEL_NESTED_KVM_H

#include "qom/object.h"
#include "system/kvm_int.h"
#include "qapi/qapi-types-nested-kvm-target.h"

#define TYPE_NESTED_KVM_ACCEL ACCEL_CLASS_NAME("nested-kvm")

typedef struct NestedKvmState NestedKvmState;
DECLARE_INSTANCE_CHECKER(NestedKvmState, NESTED_KVM_STATE,
                         TYPE_NESTED_KVM_ACCEL)

struct NestedKvmState {
    KVMState parent_obj;

    /* What a migration does when the mirror cannot vouch for a vCPU */
    NestedKvmEventMigration event_migration;
    /* Tests only: the observer's first N verdicts in guest mode fail */
    uint32_t unknown_verdicts;
    /* How long a stop lets a vCPU finish L1's event delivery */
    uint32_t stop_settle_ms;
    /* The privileged helper's socket, for a QEMU that cannot open perf */
    char *observer_helper;
    /* The kernel's report of in-flight L1 events, or the observer */
    NestedKvmStateSource state_source;
};

/*
 * In the lab (TCG below L1's KVM, far slower than hardware) the torture
 * guest's vCPUs crossed a chain boundary within 6 ms of a stop, most
 * within 0.1 ms (docs/hidden-window.rst).  A stop waits only for vCPUs
 * in guest mode that have not crossed one, and only until they do.
 */
#define NESTED_KVM_STOP_SETTLE_DEFAULT_MS 100
#define NESTED_KVM_STOP_SETTLE_MAX_MS 10000

#endif
