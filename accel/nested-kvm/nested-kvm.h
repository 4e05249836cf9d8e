/*
 * nested-kvm accelerator: KVM plus a mirror of injected-event state
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NESTED_KVM_H
#define NESTED_KVM_H

#include "qom/object.h"
#include "system/kvm.h"

#define TYPE_NESTED_KVM_ACCEL ACCEL_CLASS_NAME("nested-kvm")

/*
 * True once "-accel nested-kvm" has initialised KVM.  Hooks in the KVM
 * code test this so that they stay inert under plain "-accel kvm".
 */
extern bool nested_kvm_allowed;

/*
 * -accel nested-kvm,event-migration=: what a migration does when the
 * in-flight observer (target-i386/mirror/nested-kvm-observe.c) cannot
 * vouch for every vCPU.
 */
typedef enum NestedKVMEventMigration {
    NESTED_KVM_EVENT_MIGRATION_STRICT,      /* fail the migration */
    NESTED_KVM_EVENT_MIGRATION_BEST_EFFORT, /* warn, migrate as stock */
} NestedKVMEventMigration;

extern NestedKVMEventMigration nested_kvm_event_migration;

/*
 * -accel nested-kvm,x-unknown-verdicts=N, for tests only: the observer
 * calls its first N verdicts on a vCPU in guest mode unknown, so that a
 * strict migration is refused at the final stop on purpose.
 */
extern uint32_t nested_kvm_unknown_verdicts;

/* The target's mirror: start watching migrations. */
void nested_kvm_observe_init(void);

static inline bool nested_kvm_enabled(void)
{
    return kvm_enabled() && nested_kvm_allowed;
}

#endif
