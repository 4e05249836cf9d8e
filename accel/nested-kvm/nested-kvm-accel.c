/*
 * nested-kvm accelerator: a kvm-accel subclass
 *
 * nested-kvm reuses all of KVM's machine and vCPU machinery; it only adds
 * the injected-event mirror that live migration of nested guests needs.
 * Subclassing keeps every "-accel kvm" option (kernel-irqchip, device,
 * dirty-ring-size, ...) and keeps kvm_enabled() true, so the rest of QEMU
 * treats the VM as a KVM VM.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/accel.h"
#include "qapi/error.h"
#include "system/accel-ops.h"
#include "system/kvm.h"
#include "hw/boards.h"
#include "accel/nested-kvm/nested-kvm.h"

bool nested_kvm_allowed;
NestedKVMEventMigration nested_kvm_event_migration;
uint32_t nested_kvm_unknown_verdicts;

static const char *const event_migration_names[] = {
    [NESTED_KVM_EVENT_MIGRATION_STRICT] = "strict",
    [NESTED_KVM_EVENT_MIGRATION_BEST_EFFORT] = "best-effort",
};

typedef struct NestedKVMAccelClass {
    AccelClass parent_class;
    /* kvm-accel's init_machine, chained to from ours */
    int (*parent_init_machine)(MachineState *ms);
} NestedKVMAccelClass;

DECLARE_CLASS_CHECKERS(NestedKVMAccelClass, NESTED_KVM_ACCEL,
                       TYPE_NESTED_KVM_ACCEL)

static int nested_kvm_init_machine(MachineState *ms)
{
    NestedKVMAccelClass *nkc = NESTED_KVM_ACCEL_CLASS(
        object_get_class(OBJECT(ms->accelerator)));
    int ret;

    ret = nkc->parent_init_machine(ms);
    if (ret == 0) {
        nested_kvm_allowed = true;
        nested_kvm_observe_init();
    }
    return ret;
}

static char *nested_kvm_get_event_migration(Object *obj, Error **errp)
{
    return g_strdup(event_migration_names[nested_kvm_event_migration]);
}

static void nested_kvm_set_event_migration(Object *obj, const char *value,
                                           Error **errp)
{
    for (int i = 0; i < ARRAY_SIZE(event_migration_names); i++) {
        if (!strcmp(value, event_migration_names[i])) {
            nested_kvm_event_migration = i;
            return;
        }
    }
    error_setg(errp, "event-migration=%s: expected strict or best-effort",
               value);
}

static void nested_kvm_accel_class_init(ObjectClass *oc, void *data)
{
    AccelClass *ac = ACCEL_CLASS(oc);
    NestedKVMAccelClass *nkc = NESTED_KVM_ACCEL_CLASS(oc);

    /* QOM copied kvm-accel's class, so init_machine is still KVM's here */
    nkc->parent_init_machine = ac->init_machine;
    ac->init_machine = nested_kvm_init_machine;
    ac->name = "nested-kvm";
    object_class_property_add_str(oc, "event-migration",
                                  nested_kvm_get_event_migration,
                                  nested_kvm_set_event_migration);
    object_class_property_set_description(oc, "event-migration",
        "strict (default): fail a migration that could lose an event L1 "
        "is injecting into L2; best-effort: warn and migrate as stock "
        "QEMU does");
    object_class_property_add_uint32_ptr(oc, "x-unknown-verdicts",
                                         &nested_kvm_unknown_verdicts,
                                         OBJ_PROP_FLAG_READWRITE);
    object_class_property_set_description(oc, "x-unknown-verdicts",
        "for tests: call the in-flight observer's first N verdicts "
        "unknown");
}

static const TypeInfo nested_kvm_accel_type = {
    .name = TYPE_NESTED_KVM_ACCEL,
    .parent = TYPE_KVM_ACCEL,
    .class_size = sizeof(NestedKVMAccelClass),
    .class_init = nested_kvm_accel_class_init,
};

/*
 * accel_init_ops_interfaces() looks the ops class up by the accelerator's
 * type name, so nested-kvm needs its own; it inherits every KVM vCPU
 * thread and state-synchronisation hook unchanged.
 */
static const TypeInfo nested_kvm_accel_ops_type = {
    .name = ACCEL_OPS_NAME("nested-kvm"),
    .parent = ACCEL_OPS_NAME("kvm"),
    .abstract = true,
};

static void nested_kvm_register_types(void)
{
    type_register_static(&nested_kvm_accel_type);
    type_register_static(&nested_kvm_accel_ops_type);
}

type_init(nested_kvm_register_types);
