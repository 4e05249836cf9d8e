/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Building the event model (nested-events.h) from what KVM reports:
 * KVM_GET_VCPU_EVENTS and a kvm_nested_state decoded by nested-state.h.
 */

#ifndef TARGET_I386_NESTED_IMPORT_H
#define TARGET_I386_NESTED_IMPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <linux/kvm.h>

#include "nested-events.h"
#include "nested-state.h"

#define NESTED_VCPUEVENT_VALID_ALL \
    (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | \
     KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)

/*
 * Fill the current level and the vCPU-wide fields from KVM's view.
 * Refuses what KVM_SET_VCPU_EVENTS would refuse (unknown flags, reserved
 * bytes, non-boolean flags, exception rules) and what the model cannot
 * hold (two injected events, a soft interrupt without its length).
 */
bool nested_event_import_vcpu_events(NestedEventState *st,
                                     const struct kvm_vcpu_events *ev,
                                     GError **errp);
/*
 * Fill the vCPU-wide nested fields and an in-flight L1-origin event
 * (vmcb12 EVENTINJ / vmcs12 VM-entry info with the valid bit) into st.
 * rip and cs_base are L2's current RIP and CS base (from KVM_GET_REGS /
 * KVM_GET_SREGS): KVM uses them as the soft event's old RIP.
 */
bool nested_event_import_nested_state(NestedEventState *st,
                                      const NestedStateView *view,
                                      uint64_t rip, uint64_t cs_base,
                                      GError **errp);
/*
 * After both imports: on VMX in guest mode, L2's NMI blocking as vmcs02
 * holds it (vmcs12's guest interruptibility, which KVM_GET_NESTED_STATE
 * syncs from vmcs02) when KVM_GET_VCPU_EVENTS said unmasked.  Returns
 * true if it set l2.nmi_masked.
 */
bool nested_event_import_vmx_nmi_blocking(NestedEventState *st,
                                          const NestedStateView *view);

#endif /* TARGET_I386_NESTED_IMPORT_H */
