/*
 * nested-kvm: the "cpu/nested-events" migration subsection
 *
 * Sent only when the event model holds something that stock QEMU's own
 * fields cannot restore (an injected event's L1 origin, a soft event,
 * the interrupt shadow), so a stream with nothing in flight stays
 * loadable by stock QEMU 10.0.13.  A stock destination refuses a stream
 * that has it, which is right: it would lose the event.
 *
 * Version 2 carries only the compact form of nested-wire.h; the rest of
 * the model is rebuilt from the CPU fields stock loads before this
 * subsection (registers, hflags, the nested state blob).  post_load
 * then validates the model and plans its restore on this host; a bad
 * or unrestorable model fails the load, with the field and value
 * named, before the destination runs anything.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "cpu.h"
#include "kvm/kvm_i386.h"
#include "migration/vmstate.h"
#include "../nested-validate.h"
#include "../nested-wire.h"
#include "nested-mirror-int.h"
#include "trace.h"

/*
 * Version 1 sent the whole model (120 bytes); version 2 only what stock
 * lacks.  Nothing sends version 1 any more, so it is not accepted.
 */
#define NESTED_EVENTS_VMSTATE_VERSION 2

/* The compact form lives only while the subsection is saved or loaded. */
typedef struct NestedEventsTmp {
    X86CPU *parent;
    NestedEventWire wire;
} NestedEventsTmp;

static int nested_events_refuse(X86CPU *cpu, const char *why)
{
    error_report("nested-kvm: vCPU %d: cpu/nested-events: %s",
                 CPU(cpu)->cpu_index, why);
    trace_nested_mirror_vmstate_refused(CPU(cpu)->cpu_index, why);
    return -EINVAL;
}

/* What the model is rebuilt from; all of it is in the stream already. */
static void nested_events_stock_view(X86CPU *cpu, NestedStockView *v)
{
    CPUX86State *env = &cpu->env;

    *v = (NestedStockView) {
        .vendor = nested_mirror_vendor(env),
        .guest_mode = env->hflags & HF_GUEST_MASK,
        .gif = env->hflags2 & HF2_GIF_MASK,
        .smm = env->hflags & HF_SMM_MASK,
        .smm_inside_nmi = env->hflags2 & HF2_SMM_INSIDE_NMI_MASK,
        .nmi_masked = env->hflags2 & HF2_NMI_MASK,
        .nmi_pending = env->nmi_pending,
        .rip = env->eip,
        .cs_base = env->segs[R_CS].base,
    };
    /* kvm_arch_init_vcpu() sized the buffer; the stream set ->size. */
    if (env->nested_state) {
        v->nested_state = (const uint8_t *)env->nested_state;
        v->nested_state_len = kvm_max_nested_state_length();
    }
}

static int nested_events_wire_pre_load(void *opaque)
{
    NestedEventsTmp *tmp = opaque;

    /* Fields whose flag is clear are not on the wire: they stay 0. */
    memset(&tmp->wire, 0, sizeof(tmp->wire));
    return 0;
}

static int nested_events_wire_pre_save(void *opaque)
{
    NestedEventsTmp *tmp = opaque;
    X86CPU *cpu = tmp->parent;
    g_autoptr(GError) err = NULL;
    NestedStockView stock;

    nested_events_stock_view(cpu, &stock);
    if (!nested_event_wire_encode(&cpu->env.nested_mirror->model, &stock,
                                  &tmp->wire, &err)) {
        return nested_events_refuse(cpu, err->message);
    }
    trace_nested_mirror_vmstate_saved(CPU(cpu)->cpu_index,
                                      nested_event_wire_size(&tmp->wire));
    return 0;
}

static int nested_events_wire_post_load(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;
    X86CPU *cpu = tmp->parent;
    g_autoptr(GError) err = NULL;
    NestedStockView stock;

    nested_events_stock_view(cpu, &stock);
    if (!nested_event_wire_decode(&tmp->wire, &stock, cpu->env.nested_events,
                                  &err)) {
        return nested_events_refuse(cpu, err->message);
    }
    return 0;
}

static bool wire_has_event(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;

    return tmp->wire.flags & NESTED_WIRE_EVENT;
}

static bool wire_has_error_code(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;

    return wire_has_event(opaque, version_id) &&
           (tmp->wire.event & NESTED_WIRE_EVENT_ERROR_CODE);
}

static bool wire_has_exception(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;

    return tmp->wire.flags & NESTED_WIRE_EXCEPTION;
}

static bool wire_has_exc_error_code(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;

    return wire_has_exception(opaque, version_id) &&
           (tmp->wire.exc_info & NESTED_WIRE_EXC_ERROR_CODE);
}

static bool wire_has_exc_payload(void *opaque, int version_id)
{
    NestedEventsTmp *tmp = opaque;

    return wire_has_exception(opaque, version_id) &&
           (tmp->wire.exc_info & NESTED_WIRE_EXC_PAYLOAD);
}

/* Field order and presence rules: nested-wire.h, docs/architecture.rst */
static const VMStateDescription vmstate_nested_event_wire = {
    .name = "cpu/nested-events/wire",
    .pre_load = nested_events_wire_pre_load,
    .pre_save = nested_events_wire_pre_save,
    .post_load = nested_events_wire_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(wire.flags, NestedEventsTmp),
        VMSTATE_UINT8(wire.shadow, NestedEventsTmp),
        VMSTATE_UINT8_TEST(wire.event, NestedEventsTmp, wire_has_event),
        VMSTATE_UINT8_TEST(wire.vector, NestedEventsTmp, wire_has_event),
        VMSTATE_UINT32_TEST(wire.error_code, NestedEventsTmp,
                            wire_has_error_code),
        VMSTATE_UINT8_TEST(wire.exc_vector, NestedEventsTmp,
                           wire_has_exception),
        VMSTATE_UINT8_TEST(wire.exc_info, NestedEventsTmp,
                           wire_has_exception),
        VMSTATE_UINT32_TEST(wire.exc_error_code, NestedEventsTmp,
                            wire_has_exc_error_code),
        VMSTATE_UINT64_TEST(wire.exc_payload, NestedEventsTmp,
                            wire_has_exc_payload),
        VMSTATE_END_OF_LIST()
    }
};

static bool nested_events_needed(void *opaque)
{
    X86CPU *cpu = opaque;
    NestedMirror *m = cpu->env.nested_mirror;
    bool needed;

    if (!m) {
        return false;
    }
    /* An unmirrored vCPU must reach pre_save, which fails the migration. */
    needed = m->error || nested_event_beyond_stock(&m->model) ||
             nested_mirror_unobserved(m);
    trace_nested_mirror_vmstate_needed(CPU(cpu)->cpu_index, needed);
    return needed;
}

static int nested_events_pre_save(void *opaque)
{
    X86CPU *cpu = opaque;
    NestedMirror *m = cpu->env.nested_mirror;
    g_autoptr(GPtrArray) problems = NULL;

    if (m->error) {
        error_report("nested-kvm: vCPU %d: cannot migrate in-flight event "
                     "state: %s", CPU(cpu)->cpu_index, m->error);
        trace_nested_mirror_vmstate_refused(CPU(cpu)->cpu_index, m->error);
        return -EINVAL;
    }
    if (nested_mirror_unobserved(m)) {
        error_report("nested-kvm: vCPU %d: guest_mode=1 and nothing "
                     "watched its nested entries and exits, so nothing "
                     "tells whether an event L1 is injecting into L2 is in "
                     "flight; event-migration=strict refuses to save it "
                     "(%s)", CPU(cpu)->cpu_index,
                     nested_mirror_unobserved_why());
        return -EINVAL;
    }
    problems = nested_event_check(&m->model);
    if (problems->len) {
        /* Inconsistent, or a state no restore reproduces: the text says. */
        error_report("nested-kvm: vCPU %d: refusing to send the event "
                     "model: %s", CPU(cpu)->cpu_index,
                     (const char *)g_ptr_array_index(problems, 0));
        return -EINVAL;
    }
    return 0;
}

/*
 * env.nested_events is the mirror's model on -accel nested-kvm.
 * Elsewhere the model is rebuilt into a scratch copy, so that post_load
 * can still name a bad field before it refuses the stream.
 */
static int nested_events_pre_load(void *opaque)
{
    X86CPU *cpu = opaque;

    if (!cpu->env.nested_events) {
        cpu->env.nested_events = g_new0(NestedEventState, 1);
    }
    return 0;
}

static int nested_events_restore(X86CPU *cpu, NestedMirror *m)
{
    NestedRestoreCaps caps;
    g_autoptr(GError) err = NULL;

    nested_mirror_caps(cpu, &caps);
    if (!nested_event_plan_restore(&m->model, &caps, &m->plan, &err)) {
        return nested_events_refuse(cpu, err->message);
    }
    m->restore_pending = true;
    trace_nested_mirror_vmstate_loaded(CPU(cpu)->cpu_index,
                                       m->model.guest_mode);
    return 0;
}

/*
 * Validation comes first so that a hostile stream is reported by field
 * and value on any destination, not only on a nested-kvm one.
 */
static int nested_events_post_load(void *opaque, int version_id)
{
    X86CPU *cpu = opaque;
    NestedMirror *m = cpu->env.nested_mirror;
    g_autoptr(GError) err = NULL;
    bool valid;

    valid = nested_event_validate_received(cpu->env.nested_events,
                                           cpu->env.hflags & HF_GUEST_MASK,
                                           &err);
    if (!m) {
        /* The scratch copy has served its purpose. */
        g_clear_pointer(&cpu->env.nested_events, g_free);
        return nested_events_refuse(cpu, valid ? "the stream carries "
                                    "in-flight nested event state, which "
                                    "only -accel nested-kvm can restore"
                                    : err->message);
    }
    if (!valid) {
        return nested_events_refuse(cpu, err->message);
    }
    return nested_events_restore(cpu, m);
}

const VMStateDescription vmstate_nested_events = {
    .name = "cpu/nested-events",
    .version_id = NESTED_EVENTS_VMSTATE_VERSION,
    .minimum_version_id = NESTED_EVENTS_VMSTATE_VERSION,
    .needed = nested_events_needed,
    .pre_save = nested_events_pre_save,
    .pre_load = nested_events_pre_load,
    .post_load = nested_events_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_WITH_TMP(X86CPU, NestedEventsTmp,
                         vmstate_nested_event_wire),
        VMSTATE_END_OF_LIST()
    }
};
