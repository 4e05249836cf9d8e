/*
 * nested-kvm: the per-vCPU mirror of KVM's injected-event state
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TARGET_I386_NESTED_KVM_MIRROR_H
#define TARGET_I386_NESTED_KVM_MIRROR_H

#include "migration/vmstate.h"

struct kvm_vcpu_events;

/*
 * Hooks called from target/i386/kvm/kvm.c.  All of them return at once
 * unless the accelerator is nested-kvm.
 */
void nested_kvm_mirror_vcpu_events(X86CPU *cpu,
                                   const struct kvm_vcpu_events *events);
void nested_kvm_mirror_pull(X86CPU *cpu);
int nested_kvm_mirror_push(X86CPU *cpu, int level, Error **errp);
void nested_kvm_mirror_put_events(X86CPU *cpu,
                                  struct kvm_vcpu_events *events);
bool nested_kvm_mirror_keep_events(X86CPU *cpu, int level);
void nested_kvm_mirror_free(X86CPU *cpu);

/* The "cpu/nested-events" subsection of vmstate_x86_cpu. */
extern const VMStateDescription vmstate_nested_events;

#endif
