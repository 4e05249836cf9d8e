/*
 * nested-kvm: x-query-nested-events in a QEMU built without KVM
 *
 * The QAPI schema is target-wide, so the command exists in every x86
 * build; without KVM there is no nested-kvm accelerator to mirror.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-nested-kvm-target.h"

NestedKvmVcpuEventsList *qmp_x_query_nested_events(Error **errp)
{
    error_setg(errp, "x-query-nested-events needs -accel nested-kvm, and "
               "this QEMU was built without KVM");
    return NULL;
}
