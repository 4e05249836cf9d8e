/*
 * nested-kvm: x-query-nested-events and "info vcpu-events"
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-nested-kvm-target.h"
#include "monitor/monitor.h"
#include "monitor/hmp.h"
#include "monitor/hmp-target.h"
#include "hw/core/cpu.h"
#include "system/hw_accel.h"
#include "cpu.h"
#include "nested-mirror-int.h"

static NestedKvmVendor nested_mirror_vendor_info(uint8_t vendor)
{
    switch (vendor) {
    case NESTED_VENDOR_SVM:
        return NESTED_KVM_VENDOR_SVM;
    case NESTED_VENDOR_VMX:
        return NESTED_KVM_VENDOR_VMX;
    default:
        return NESTED_KVM_VENDOR_NONE;
    }
}

static NestedKvmEvent *nested_mirror_event_info(const NestedEvent *ev)
{
    NestedKvmEvent *info;

    if (!ev->valid) {
        return NULL;
    }
    info = g_new0(NestedKvmEvent, 1);
    /* The model's type numbers are the QAPI enum's order, gaps aside. */
    switch (ev->type) {
    case NESTED_EVENT_EXT_INTR:
        info->type = NESTED_KVM_EVENT_TYPE_EXT_INTR;
        break;
    case NESTED_EVENT_NMI:
        info->type = NESTED_KVM_EVENT_TYPE_NMI;
        break;
    case NESTED_EVENT_HW_EXCEPTION:
        info->type = NESTED_KVM_EVENT_TYPE_HW_EXCEPTION;
        break;
    case NESTED_EVENT_SOFT_INTR:
        info->type = NESTED_KVM_EVENT_TYPE_SOFT_INTR;
        break;
    case NESTED_EVENT_PRIV_SOFT_EXCEPTION:
        info->type = NESTED_KVM_EVENT_TYPE_PRIV_SOFT_EXCEPTION;
        break;
    case NESTED_EVENT_SOFT_EXCEPTION:
        info->type = NESTED_KVM_EVENT_TYPE_SOFT_EXCEPTION;
        break;
    default:
        info->type = NESTED_KVM_EVENT_TYPE_OTHER;
        break;
    }
    info->vector = ev->vector;
    info->origin = ev->origin == NESTED_ORIGIN_L1 ?
                   NESTED_KVM_EVENT_ORIGIN_L1 : NESTED_KVM_EVENT_ORIGIN_L0;
    info->has_error_code = ev->has_error_code;
    info->error_code = ev->error_code;
    if (nested_event_type_is_soft(ev->type)) {
        info->has_insn_len = info->has_old_rip = true;
        info->has_next_rip = info->has_cs_base = true;
        info->insn_len = ev->insn_len;
        info->old_rip = ev->old_rip;
        info->next_rip = ev->next_rip;
        info->cs_base = ev->cs_base;
    }
    return info;
}

static NestedKvmEventLevel *nested_mirror_level_info(const NestedEventLevel *l)
{
    NestedKvmEventLevel *info = g_new0(NestedKvmEventLevel, 1);

    info->injected = nested_mirror_event_info(&l->injected);
    if (l->exception.pending) {
        NestedKvmPendingException *ex = g_new0(NestedKvmPendingException, 1);

        ex->vector = l->exception.vector;
        ex->has_error_code = l->exception.has_error_code;
        ex->error_code = l->exception.error_code;
        ex->has_payload = l->exception.has_payload;
        ex->payload = l->exception.payload;
        info->pending_exception = ex;
    }
    info->nmi_pending = l->nmi_pending;
    info->nmi_masked = l->nmi_masked;
    info->interrupt_shadow = l->interrupt_shadow;
    return info;
}

static NestedKvmVcpuEvents *nested_mirror_vcpu_info(CPUState *cs,
                                                    NestedMirror *m)
{
    NestedKvmVcpuEvents *info = g_new0(NestedKvmVcpuEvents, 1);
    const NestedEventState *st = &m->model;

    info->cpu_index = cs->cpu_index;
    info->vendor = nested_mirror_vendor_info(st->vendor);
    info->guest_mode = st->guest_mode;
    info->nested_run_pending = st->nested_run_pending;
    info->gif = st->gif;
    info->smm = st->smi.smm;
    info->triple_fault_pending = st->triple_fault_pending;
    info->l1 = nested_mirror_level_info(&st->l1);
    info->l2 = nested_mirror_level_info(&st->l2);
    info->restore_pending = m->restore_pending;
    info->mirror_error = g_strdup(m->error);
    info->state_source = nested_mirror_state_source();
    return info;
}

NestedKvmVcpuEventsList *qmp_x_query_nested_events(Error **errp)
{
    NestedKvmVcpuEventsList *head = NULL, **tail = &head;
    CPUState *cs;

    if (!nested_mirror_is_set_up()) {
        error_setg(errp, "x-query-nested-events needs -accel nested-kvm");
        return NULL;
    }
    CPU_FOREACH(cs) {
        /* Every vCPU gets a mirror at init once the mirror is set up. */
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        /* A get of the vCPU state refreshes the mirror. */
        cpu_synchronize_state(cs);
        QAPI_LIST_APPEND(tail, nested_mirror_vcpu_info(cs, m));
    }
    return head;
}

static void hmp_print_level(Monitor *mon, const char *name,
                            const NestedKvmEventLevel *l)
{
    monitor_printf(mon, "  %s: nmi-pending %u nmi-masked %d shadow 0x%x\n",
                   name, l->nmi_pending, l->nmi_masked, l->interrupt_shadow);
    if (l->injected) {
        const NestedKvmEvent *ev = l->injected;

        monitor_printf(mon, "    injected %s vector 0x%x origin %s",
                       NestedKvmEventType_str(ev->type), ev->vector,
                       NestedKvmEventOrigin_str(ev->origin));
        if (ev->has_error_code) {
            monitor_printf(mon, " error-code 0x%x", ev->error_code);
        }
        if (ev->has_next_rip) {
            monitor_printf(mon, " len %u old-rip 0x%" PRIx64
                           " next-rip 0x%" PRIx64 " cs-base 0x%" PRIx64,
                           ev->insn_len, ev->old_rip, ev->next_rip,
                           ev->cs_base);
        }
        monitor_printf(mon, "\n");
    }
    if (l->pending_exception) {
        const NestedKvmPendingException *ex = l->pending_exception;

        monitor_printf(mon, "    pending exception vector 0x%x", ex->vector);
        if (ex->has_error_code) {
            monitor_printf(mon, " error-code 0x%x", ex->error_code);
        }
        if (ex->has_payload) {
            monitor_printf(mon, " payload 0x%" PRIx64, ex->payload);
        }
        monitor_printf(mon, "\n");
    }
}

void hmp_info_vcpu_events(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(NestedKvmVcpuEventsList) list = qmp_x_query_nested_events(&err);

    if (hmp_handle_error(mon, err)) {
        return;
    }
    for (NestedKvmVcpuEventsList *e = list; e; e = e->next) {
        NestedKvmVcpuEvents *v = e->value;

        monitor_printf(mon, "CPU #%" PRId64 ": %s guest-mode %d "
                       "run-pending %d gif %d smm %d triple-fault %d "
                       "source %s%s\n",
                       v->cpu_index, NestedKvmVendor_str(v->vendor),
                       v->guest_mode,
                       v->nested_run_pending, v->gif, v->smm,
                       v->triple_fault_pending,
                       NestedKvmStateSource_str(v->state_source),
                       v->restore_pending ? " (restore pending)" : "");
        hmp_print_level(mon, "l1", v->l1);
        hmp_print_level(mon, "l2", v->l2);
        if (v->mirror_error) {
            monitor_printf(mon, "  mirror error: %s\n", v->mirror_error);
        }
    }
}
