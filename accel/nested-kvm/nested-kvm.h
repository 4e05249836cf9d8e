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

static inline bool nested_kvm_enabled(void)
{
    return kvm_enabled() && nested_kvm_allowed;
}

#endif
