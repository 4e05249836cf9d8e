/*
 * nested-kvm accelerator: per-target vCPU class
 *
 * accel_init_cpu_interfaces() looks the accel-cpu class up by the
 * accelerator's type name.  Without this subclass a nested-kvm vCPU would
 * miss KVM's CPUID setup and realize checks.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "cpu.h"
#include "accel/accel-cpu-target.h"

static const TypeInfo nested_kvm_accel_cpu_type = {
    .name = ACCEL_CPU_NAME("nested-kvm"),
    .parent = ACCEL_CPU_NAME("kvm"),
    .abstract = true,
};

static void nested_kvm_accel_cpu_register_types(void)
{
    type_register_static(&nested_kvm_accel_cpu_type);
}

type_init(nested_kvm_accel_cpu_register_types);
