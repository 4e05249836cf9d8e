/*
 * nested-kvm: the mirror during a migration
 *
 * From migration setup until the migration ends, every vCPU has an
 * observer (nested-observer.c) recording KVM's nested tracepoints, so
 * that an event L1 is still injecting into L2 at the final stop can be
 * put back into the model with its origin (docs/hidden-window.rst).
 * Outside a migration nothing is armed, and KVM_RUN costs what it costs
 * under -accel kvm.
 *
 * The policy lives here: with event-migration=strict a migration that
 * cannot be observed fails at setup, while the source still runs, and
 * one whose records do not decide fails when the vCPU state is saved
 * (the source then runs on).  best-effort warns and migrates as stock
 * QEMU would.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "migration/misc.h"
#include "hw/core/cpu.h"
#include "cpu.h"
#include "nested-mirror-int.h"
#include "trace.h"

static NestedMirrorConfig mirror_config;
static NotifierWithReturn migration_notifier;

static bool best_effort(void)
{
    return mirror_config.event_migration ==
           NESTED_KVM_EVENT_MIGRATION_BEST_EFFORT;
}

static void observers_disarm(void)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        if (m) {
            g_clear_pointer(&m->observer, nested_observer_free);
        }
    }
    trace_nested_mirror_observers_disarm();
}

static bool observers_arm(Error **errp)
{
    NestedTraceFormat format;
    CPUState *cs;

    if (!nested_observer_load_format(&format, errp)) {
        return false;
    }
    CPU_FOREACH(cs) {
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        m->warned = false;
        m->observer = nested_observer_new(&format, cs->thread_id,
                                          cs->cpu_index, errp);
        if (!m->observer) {
            observers_disarm();
            return false;
        }
    }
    trace_nested_mirror_observers_arm();
    return true;
}

/* Whichever nested virtualization the vCPUs offer; NONE: nothing hides */
static NestedVendor guest_vendor(void)
{
    NestedVendor vendor = NESTED_VENDOR_NONE;
    CPUState *cs;

    CPU_FOREACH(cs) {
        NestedVendor v = nested_mirror_vendor(&X86_CPU(cs)->env);

        if (v != NESTED_VENDOR_NONE) {
            vendor = v;
        }
    }
    return vendor;
}

static int migration_setup(Error **errp)
{
    Error *local = NULL;

    switch (guest_vendor()) {
    case NESTED_VENDOR_NONE:
        return 0;
    case NESTED_VENDOR_VMX:
        error_setg(&local, "the in-flight observer reads SVM's EXITINTINFO "
                   "and cannot watch VMX's IDT-vectoring information");
        break;
    default:
        if (observers_arm(&local)) {
            return 0;
        }
    }
    if (best_effort()) {
        warn_report_err(local);
        warn_report("nested-kvm: event-migration=best-effort: an event L1 "
                    "is injecting into L2 at the final stop may be lost");
        return 0;
    }
    error_propagate_prepend(errp, local, "nested-kvm: event-migration="
                            "strict refuses to migrate: ");
    return -1;
}

static int migration_notify(NotifierWithReturn *n, MigrationEvent *e,
                            Error **errp)
{
    if (e->type == MIG_EVENT_PRECOPY_SETUP) {
        return migration_setup(errp);
    }
    observers_disarm();
    return 0;
}

void nested_mirror_migration_init(const NestedMirrorConfig *config)
{
    mirror_config = *config;
    migration_add_notifier(&migration_notifier, migration_notify);
}

/* x-unknown-verdicts: spoil the next verdict on purpose, for tests */
static void force_unknown(NestedWindow *w)
{
    if (!mirror_config.unknown_verdicts ||
        w->verdict == NESTED_WINDOW_UNKNOWN) {
        return;
    }
    mirror_config.unknown_verdicts--;
    memset(w, 0, sizeof(*w));
    w->verdict = NESTED_WINDOW_UNKNOWN;
    g_strlcpy(w->why, "verdict forced unknown (x-unknown-verdicts)",
              sizeof(w->why));
}

bool nested_mirror_observe(X86CPU *cpu, NestedMirror *m, GError **errp)
{
    CPUX86State *env = &cpu->env;
    g_autoptr(GError) err = NULL;

    /* Outside guest mode nothing of L1's can be in flight. */
    if (!m->observer || !m->model.guest_mode) {
        return true;
    }
    nested_observer_judge(m->observer, &m->window);
    force_unknown(&m->window);
    if (nested_window_apply(&m->model, &m->window, env->eip,
                            env->segs[R_CS].base, m->svm_next_rip, &err)) {
        return true;
    }
    if (!best_effort()) {
        g_propagate_error(errp, g_steal_pointer(&err));
        return false;
    }
    /* Once per vCPU and migration: this runs at every state sync. */
    if (!m->warned) {
        warn_report("nested-kvm: vCPU %d: %s; migrating it as stock QEMU "
                    "would (event-migration=best-effort)",
                    CPU(cpu)->cpu_index, err->message);
        m->warned = true;
    }
    return true;
}
