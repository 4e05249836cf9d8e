/*
 * nested-kvm: the "cpu/nested-events" migration subsection
 *
 * It carries the whole event model of a vCPU, but only when the model
 * holds something that stock QEMU's fields cannot restore (an injected
 * event's L1 origin, a soft event's RIPs), so a stream with nothing in
 * flight stays loadable by stock QEMU 10.0.13.  A stock destination
 * refuses a stream that has it, which is right: it would lose the event.
 *
 * post_load validates the model and plans its restore on this host; a
 * bad or unrestorable model fails the load, with the field and value
 * named, before the destination runs anything.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "cpu.h"
#include "migration/vmstate.h"
#include "../nested-validate.h"
#include "nested-mirror-int.h"
#include "trace.h"

/* Bumped when the field list below changes incompatibly. */
#define NESTED_EVENTS_VMSTATE_VERSION 1

static const VMStateDescription vmstate_nested_event = {
    .name = "cpu/nested-events/event",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(valid, NestedEvent),
        VMSTATE_UINT8(type, NestedEvent),
        VMSTATE_UINT8(vector, NestedEvent),
        VMSTATE_UINT8(origin, NestedEvent),
        VMSTATE_BOOL(has_error_code, NestedEvent),
        VMSTATE_UINT32(error_code, NestedEvent),
        VMSTATE_UINT8(insn_len, NestedEvent),
        VMSTATE_UINT64(old_rip, NestedEvent),
        VMSTATE_UINT64(next_rip, NestedEvent),
        VMSTATE_UINT64(cs_base, NestedEvent),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription vmstate_nested_pending_exception = {
    .name = "cpu/nested-events/exception",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(pending, NestedPendingException),
        VMSTATE_UINT8(vector, NestedPendingException),
        VMSTATE_BOOL(has_error_code, NestedPendingException),
        VMSTATE_UINT32(error_code, NestedPendingException),
        VMSTATE_BOOL(has_payload, NestedPendingException),
        VMSTATE_UINT64(payload, NestedPendingException),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription vmstate_nested_event_level = {
    .name = "cpu/nested-events/level",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_STRUCT(injected, NestedEventLevel, 1,
                       vmstate_nested_event, NestedEvent),
        VMSTATE_STRUCT(exception, NestedEventLevel, 1,
                       vmstate_nested_pending_exception,
                       NestedPendingException),
        VMSTATE_UINT8(nmi_pending, NestedEventLevel),
        VMSTATE_BOOL(nmi_masked, NestedEventLevel),
        VMSTATE_UINT8(interrupt_shadow, NestedEventLevel),
        VMSTATE_END_OF_LIST()
    }
};

static const VMStateDescription vmstate_nested_event_state = {
    .name = "cpu/nested-events/state",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(vendor, NestedEventState),
        VMSTATE_BOOL(guest_mode, NestedEventState),
        VMSTATE_BOOL(nested_run_pending, NestedEventState),
        VMSTATE_BOOL(gif, NestedEventState),
        VMSTATE_BOOL(triple_fault_pending, NestedEventState),
        VMSTATE_BOOL(sipi_vector_valid, NestedEventState),
        VMSTATE_UINT32(sipi_vector, NestedEventState),
        VMSTATE_BOOL(smi.smm, NestedEventState),
        VMSTATE_BOOL(smi.pending, NestedEventState),
        VMSTATE_BOOL(smi.smm_inside_nmi, NestedEventState),
        VMSTATE_BOOL(smi.latched_init, NestedEventState),
        VMSTATE_STRUCT(l1, NestedEventState, 1, vmstate_nested_event_level,
                       NestedEventLevel),
        VMSTATE_STRUCT(l2, NestedEventState, 1, vmstate_nested_event_level,
                       NestedEventLevel),
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
                     "(stop-settle-ms=0, or the observer could not be "
                     "armed at the stop)", CPU(cpu)->cpu_index);
        return -EINVAL;
    }
    problems = nested_event_check(&m->model);
    if (problems->len) {
        error_report("nested-kvm: vCPU %d: refusing to send an inconsistent "
                     "event model: %s", CPU(cpu)->cpu_index,
                     (const char *)g_ptr_array_index(problems, 0));
        return -EINVAL;
    }
    return 0;
}

/*
 * env.nested_events is the mirror's model on -accel nested-kvm.
 * Elsewhere the model is read into a scratch copy, so that post_load can
 * still name a bad field before it refuses the stream.
 */
static int nested_events_pre_load(void *opaque)
{
    X86CPU *cpu = opaque;

    if (!cpu->env.nested_events) {
        cpu->env.nested_events = g_new0(NestedEventState, 1);
    }
    return 0;
}

static int nested_events_refuse(X86CPU *cpu, const char *why)
{
    error_report("nested-kvm: vCPU %d: cpu/nested-events: %s",
                 CPU(cpu)->cpu_index, why);
    trace_nested_mirror_vmstate_refused(CPU(cpu)->cpu_index, why);
    return -EINVAL;
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
        VMSTATE_STRUCT_POINTER(env.nested_events, X86CPU,
                               vmstate_nested_event_state, NestedEventState),
        VMSTATE_END_OF_LIST()
    }
};
