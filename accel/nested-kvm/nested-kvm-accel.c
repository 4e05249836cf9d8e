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
#include "qapi/visitor.h"
#include "system/accel-ops.h"
#include "hw/boards.h"
#include "accel/nested-kvm/nested-kvm.h"
#include "target/i386/nested-kvm/mirror/nested-mirror.h"

typedef struct NestedKvmAccelClass {
    AccelClass parent_class;
    /* kvm-accel's init_machine, chained to from ours */
    int (*parent_init_machine)(MachineState *ms);
} NestedKvmAccelClass;

DECLARE_CLASS_CHECKERS(NestedKvmAccelClass, NESTED_KVM_ACCEL,
                       TYPE_NESTED_KVM_ACCEL)

static int nested_kvm_init_machine(MachineState *ms)
{
    NestedKvmState *s = NESTED_KVM_STATE(ms->accelerator);
    NestedKvmAccelClass *nkc = NESTED_KVM_ACCEL_GET_CLASS(ms->accelerator);
    NestedMirrorConfig config = {
        .event_migration = s->event_migration,
        .unknown_verdicts = s->unknown_verdicts,
        .stop_settle_ms = s->stop_settle_ms,
        .observer_helper = s->observer_helper,
        .state_source = s->state_source,
    };
    Error *err = NULL;
    int ret;

    ret = nkc->parent_init_machine(ms);
    if (ret < 0) {
        return ret;
    }
    if (!nested_mirror_setup(&config, &err)) {
        error_report_err(err);
        return -ENOTSUP;
    }
    return 0;
}

/* Like KVM's own options, ours are read once, at init_machine. */
static bool nested_kvm_check_settable(NestedKvmState *s, const char *name,
                                      Error **errp)
{
    if (s->parent_obj.fd != -1) {
        error_setg(errp, "nested-kvm: %s cannot change after the "
                   "accelerator has been initialized", name);
        return false;
    }
    return true;
}

static int nested_kvm_get_event_migration(Object *obj, Error **errp)
{
    return NESTED_KVM_STATE(obj)->event_migration;
}

static void nested_kvm_set_event_migration(Object *obj, int value,
                                           Error **errp)
{
    NestedKvmState *s = NESTED_KVM_STATE(obj);

    if (nested_kvm_check_settable(s, "event-migration", errp)) {
        s->event_migration = value;
    }
}

static int nested_kvm_get_state_source(Object *obj, Error **errp)
{
    return NESTED_KVM_STATE(obj)->state_source;
}

static void nested_kvm_set_state_source(Object *obj, int value, Error **errp)
{
    NestedKvmState *s = NESTED_KVM_STATE(obj);

    if (nested_kvm_check_settable(s, "state-source", errp)) {
        s->state_source = value;
    }
}

/* A uint32 option: where it sits in NestedKvmState, and its largest value */
typedef struct NestedKvmU32Option {
    size_t offset;
    uint32_t max;
} NestedKvmU32Option;

static const NestedKvmU32Option unknown_verdicts_option = {
    offsetof(NestedKvmState, unknown_verdicts), UINT32_MAX,
};
static const NestedKvmU32Option stop_settle_ms_option = {
    offsetof(NestedKvmState, stop_settle_ms), NESTED_KVM_STOP_SETTLE_MAX_MS,
};

static uint32_t *nested_kvm_u32_field(Object *obj, void *opaque)
{
    const NestedKvmU32Option *opt = opaque;

    return (uint32_t *)((char *)NESTED_KVM_STATE(obj) + opt->offset);
}

static void nested_kvm_get_u32(Object *obj, Visitor *v, const char *name,
                               void *opaque, Error **errp)
{
    uint32_t value = *nested_kvm_u32_field(obj, opaque);

    visit_type_uint32(v, name, &value, errp);
}

static void nested_kvm_set_u32(Object *obj, Visitor *v, const char *name,
                               void *opaque, Error **errp)
{
    const NestedKvmU32Option *opt = opaque;
    uint32_t value;

    if (!nested_kvm_check_settable(NESTED_KVM_STATE(obj), name, errp) ||
        !visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (value > opt->max) {
        error_setg(errp, "nested-kvm: %s=%" PRIu32 " is more than %" PRIu32,
                   name, value, opt->max);
        return;
    }
    *nested_kvm_u32_field(obj, opaque) = value;
}

static char *nested_kvm_get_observer_helper(Object *obj, Error **errp)
{
    return g_strdup(NESTED_KVM_STATE(obj)->observer_helper);
}

static void nested_kvm_set_observer_helper(Object *obj, const char *value,
                                           Error **errp)
{
    NestedKvmState *s = NESTED_KVM_STATE(obj);

    if (!nested_kvm_check_settable(s, "observer-helper", errp)) {
        return;
    }
    if (value[0] != '/') {
        error_setg(errp, "nested-kvm: observer-helper=%s is not an absolute "
                   "socket path", value);
        return;
    }
    g_free(s->observer_helper);
    s->observer_helper = g_strdup(value);
}

static void nested_kvm_accel_instance_init(Object *obj)
{
    NestedKvmState *s = NESTED_KVM_STATE(obj);

    s->event_migration = NESTED_KVM_EVENT_MIGRATION_STRICT;
    s->stop_settle_ms = NESTED_KVM_STOP_SETTLE_DEFAULT_MS;
    s->state_source = NESTED_KVM_STATE_SOURCE_AUTO;
}

static void nested_kvm_accel_class_init(ObjectClass *oc, void *data)
{
    AccelClass *ac = ACCEL_CLASS(oc);
    NestedKvmAccelClass *nkc = NESTED_KVM_ACCEL_CLASS(oc);

    /* QOM copied kvm-accel's class, so init_machine is still KVM's here */
    nkc->parent_init_machine = ac->init_machine;
    ac->init_machine = nested_kvm_init_machine;
    ac->name = "nested-kvm";

    object_class_property_add_enum(oc, "event-migration",
                                   "NestedKvmEventMigration",
                                   &NestedKvmEventMigration_lookup,
                                   nested_kvm_get_event_migration,
                                   nested_kvm_set_event_migration);
    object_class_property_set_description(oc, "event-migration",
        "strict (default): fail a migration that could lose an event L1 "
        "is injecting into L2; best-effort: warn and migrate as stock "
        "QEMU does");
    object_class_property_add_enum(oc, "state-source",
                                   "NestedKvmStateSource",
                                   &NestedKvmStateSource_lookup,
                                   nested_kvm_get_state_source,
                                   nested_kvm_set_state_source);
    object_class_property_set_description(oc, "state-source",
        "auto (default): take the state of an event L1 is injecting into "
        "L2 from the kernel when its KVM offers "
        "KVM_CAP_X86_NESTED_EVENT_STATE, else watch KVM's tracepoints; "
        "kernel: refuse to start without the capability; observer: "
        "always watch the tracepoints");
    object_class_property_add(oc, "x-unknown-verdicts", "uint32",
                              nested_kvm_get_u32, nested_kvm_set_u32, NULL,
                              (void *)&unknown_verdicts_option);
    object_class_property_set_description(oc, "x-unknown-verdicts",
        "for tests: call the first N in-flight verdicts unknown (the "
        "observer's, or the kernel's report during a migration)");
    object_class_property_add(oc, "stop-settle-ms", "uint32",
                              nested_kvm_get_u32, nested_kvm_set_u32, NULL,
                              (void *)&stop_settle_ms_option);
    object_class_property_set_description(oc, "stop-settle-ms",
        "how long a stop of the running VM (a migration's final stop, "
        "pause, savevm) may let a vCPU inside L1's event delivery run on, "
        "so that the save can tell whether that event is in flight; 0: "
        "not at all, and a migration is watched from its setup");
    object_class_property_add_str(oc, "observer-helper",
                                  nested_kvm_get_observer_helper,
                                  nested_kvm_set_observer_helper);
    object_class_property_set_description(oc, "observer-helper",
        "socket of nested-kvm-observer-helper, which opens KVM's nested "
        "tracepoints for a QEMU without the privilege to "
        "(docs/libvirt.rst)");
}

static const TypeInfo nested_kvm_accel_type = {
    .name = TYPE_NESTED_KVM_ACCEL,
    .parent = TYPE_KVM_ACCEL,
    .instance_size = sizeof(NestedKvmState),
    .instance_init = nested_kvm_accel_instance_init,
    .class_size = sizeof(NestedKvmAccelClass),
    .class_init = nested_kvm_accel_class_init,
};

static void nested_kvm_accel_ops_class_init(ObjectClass *oc, void *data)
{
    AccelOpsClass *ops = ACCEL_OPS_CLASS(oc);

    ops->prepare_vm_stop = nested_mirror_prepare_stop;
    ops->can_migrate = nested_mirror_can_migrate;
}

/*
 * accel_init_ops_interfaces() looks the ops class up by the accelerator's
 * type name, so nested-kvm needs its own; it inherits every KVM vCPU
 * thread and state-synchronisation hook unchanged, and adds one for
 * stops and one that may block a migration before it starts.
 */
static const TypeInfo nested_kvm_accel_ops_type = {
    .name = ACCEL_OPS_NAME("nested-kvm"),
    .parent = ACCEL_OPS_NAME("kvm"),
    .class_init = nested_kvm_accel_ops_class_init,
    .abstract = true,
};

static void nested_kvm_register_types(void)
{
    type_register_static(&nested_kvm_accel_type);
    type_register_static(&nested_kvm_accel_ops_type);
}

type_init(nested_kvm_register_types);
