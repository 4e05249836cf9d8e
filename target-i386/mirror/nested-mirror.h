/*
 * nested-kvm: the per-vCPU mirror of KVM's injected-event state
 *
 * The interface of the mirror towards QEMU: the accelerator sets it up,
 * target/i386/kvm/kvm.c calls the hooks around each state sync, and
 * target/i386/machine.c lists its migration subsection.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_MIRROR_H
#define TARGET_I386_NESTED_MIRROR_H

#include "migration/vmstate.h"
#include "qapi/qapi-types-nested-kvm-target.h"
#include "qapi/qapi-types-run-state.h"

struct kvm_vcpu_events;
struct kvm_nested_state;

typedef struct NestedMirrorConfig {
    NestedKvmEventMigration event_migration;
    uint32_t unknown_verdicts;  /* tests: force the first N verdicts */
    uint32_t stop_settle_ms;    /* 0: a stop arms no observer */
    /* NULL: open the tracepoints here; else the helper's socket */
    const char *observer_helper;
    /* auto, kernel or observer; nested_mirror_setup() settles auto */
    NestedKvmStateSource state_source;
} NestedMirrorConfig;

/*
 * -accel nested-kvm, once KVM is up and before any vCPU exists: mirror
 * every vCPU created next, and turn on the kernel's nested event state
 * when config asks for it and KVM offers it.  Fails on a host whose KVM
 * cannot run a guest hypervisor, or lacks what state_source=kernel needs.
 */
bool nested_mirror_setup(const NestedMirrorConfig *config, Error **errp);

/*
 * Hooks called from target/i386/kvm/kvm.c.  A vCPU gets a mirror at
 * init only under nested-kvm; every hook returns at once without one.
 */
void nested_mirror_init_vcpu(X86CPU *cpu);
void nested_mirror_destroy_vcpu(X86CPU *cpu);
/* May rewrite events: QEMU's own copy is what a stock kernel reports. */
void nested_mirror_vcpu_events(X86CPU *cpu, struct kvm_vcpu_events *events);
void nested_mirror_pull(X86CPU *cpu);
int nested_mirror_push(X86CPU *cpu, int level, Error **errp);
struct kvm_nested_state *nested_mirror_prime_state(X86CPU *cpu);
void nested_mirror_put_events(X86CPU *cpu, struct kvm_vcpu_events *events);
bool nested_mirror_keep_events(X86CPU *cpu, int level);

/*
 * The accelerator's prepare_vm_stop: a running VM is about to stop with
 * state, so that a save may follow.
 */
void nested_mirror_prepare_stop(RunState state);

/*
 * The accelerator's can_migrate: false, with errp set, while
 * event-migration=strict would refuse a migration at its setup.
 */
bool nested_mirror_can_migrate(Error **errp);

/* The "cpu/nested-events" subsection of vmstate_x86_cpu. */
extern const VMStateDescription vmstate_nested_events;

#endif
