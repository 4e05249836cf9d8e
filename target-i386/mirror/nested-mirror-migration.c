/*
 * nested-kvm: the mirror while a VM leaves its host
 *
 * A kernel with KVM_CAP_X86_NESTED_EVENT_STATE reports an event L1 is
 * still injecting into L2 itself, at every get (state-source kernel);
 * then nothing here is armed and nothing needs privilege.  Otherwise an
 * observer per vCPU (nested-observer.c) records KVM's nested
 * tracepoints, so that such an event, when the vCPU state is saved, can
 * be put back into the model with its origin (docs/hidden-window.rst).
 * Observers are armed at a stop of the running VM: a migration's final
 * stop, a pause, a savevm.  Each vCPU in guest mode then runs on until
 * its records start a delivery chain (nested_mirror_prepare_stop()), so
 * that a live migration runs unwatched until its last moment and costs
 * KVM_RUN nothing before it (with stop-settle-ms=0 a migration is
 * watched from its setup instead).  They are disarmed when the migration
 * ends with the VM running, or when a stopped VM runs again: the records
 * stay exact for as long as the vCPUs do not run unwatched.
 *
 * The policy lives here: with event-migration=strict a migration that
 * cannot be observed is blocked before it starts (nested_mirror_can_migrate(),
 * or failing that at its setup), while the source still runs, and
 * one whose records do not decide fails when the vCPU state is saved
 * (the source then runs on); a savevm fails the same way.  best-effort
 * warns and saves as stock QEMU would.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "qemu/timer.h"
#include "migration/misc.h"
#include "system/runstate.h"
#include "hw/core/cpu.h"
#include "cpu.h"
#include "kvm/kvm_i386.h"
#include "nested-mirror-int.h"
#include "trace.h"

/* Why the observers are armed; the records are exact for that long */
typedef enum ObserverUse {
    OBSERVERS_OFF,
    OBSERVERS_STOPPED,          /* armed at a stop; the VM has not run since */
    OBSERVERS_AWAITED,          /* opened for a migration, not recording */
    OBSERVERS_MIGRATING,        /* armed for a migration, until it ends */
} ObserverUse;

#define STRICT_REFUSAL "nested-kvm: event-migration=strict refuses to migrate: "

static NestedMirrorConfig mirror_config;
static NotifierWithReturn migration_notifier;
static ObserverUse observer_use;
/* The migration's observers were armed at a stop and hold its records */
static bool migrating_since_stop;
/* state-source kernel: a migration runs (x-unknown-verdicts, warnings) */
static bool kernel_migrating;
/* Why the last stop armed no observer, for a save that then refuses */
static char *stop_unobserved_why;
/* A stop's probes of the vCPUs' guest mode still to run (BQL) */
static unsigned probes_pending;
static QemuCond probes_done;

static bool best_effort(void)
{
    return mirror_config.event_migration ==
           NESTED_KVM_EVENT_MIGRATION_BEST_EFFORT;
}

static bool kernel_source(void)
{
    return mirror_config.state_source == NESTED_KVM_STATE_SOURCE_KERNEL;
}

static void warnings_reset(void)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        X86_CPU(cs)->env.nested_mirror->warned = false;
    }
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
    observer_use = OBSERVERS_OFF;
    trace_nested_mirror_observers_disarm();
}

/* Open every vCPU's observer; none records until observers_enable(). */
static bool observers_open(Error **errp)
{
    NestedTraceFormat format;
    CPUState *cs;

    if (!nested_observer_load_format(&format, mirror_config.observer_helper,
                                     errp)) {
        return false;
    }
    CPU_FOREACH(cs) {
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        m->warned = false;
        m->observer = nested_observer_new(&format,
                                          mirror_config.observer_helper,
                                          cs->thread_id, cs->cpu_index, errp);
        if (!m->observer) {
            observers_disarm();
            return false;
        }
    }
    trace_nested_mirror_observers_arm();
    return true;
}

static bool observers_enable(Error **errp)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        if (!nested_observer_enable(X86_CPU(cs)->env.nested_mirror->observer,
                                    errp)) {
            observers_disarm();
            return false;
        }
    }
    trace_nested_mirror_observers_enable();
    return true;
}

static bool observers_arm(Error **errp)
{
    return observers_open(errp) && observers_enable(errp);
}

/* Whether m's observer records: one opened ahead for a migration waits. */
static bool watching(NestedMirror *m)
{
    return m->observer && observer_use != OBSERVERS_AWAITED;
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

/*
 * The accelerator's can_migrate, asked before a migration or a snapshot
 * starts and by query-migrate: whether a migration's setup would refuse
 * to open the observers.  libvirt reads query-migrate's blocked-reasons
 * before it starts a migration; refused only at the setup, a migration
 * fails after the destination accepted its connection, that QEMU quits,
 * and virsh may report that instead of this reason.  The observers are
 * closed again: the setup opens its own.
 */
bool nested_mirror_can_migrate(Error **errp)
{
    Error *local = NULL;

    /* QEMU lets no migration start from these: nothing to open for. */
    if (runstate_check(RUN_STATE_INMIGRATE) ||
        runstate_check(RUN_STATE_POSTMIGRATE)) {
        return true;
    }
    if (kernel_source() || best_effort() || observer_use != OBSERVERS_OFF ||
        guest_vendor() == NESTED_VENDOR_NONE) {
        return true;
    }
    if (!observers_open(&local)) {
        error_propagate_prepend(errp, local, STRICT_REFUSAL);
        return false;
    }
    observers_disarm();
    return true;
}

static int migration_setup(Error **errp)
{
    Error *local = NULL;

    /* The kernel reports the window at every get: nothing to arm. */
    if (kernel_source()) {
        kernel_migrating = true;
        warnings_reset();
        return 0;
    }

    migrating_since_stop = observer_use == OBSERVERS_STOPPED;
    if (migrating_since_stop) {
        /* Paused since the stop that armed them: nothing ran unwatched. */
        observer_use = OBSERVERS_MIGRATING;
        return 0;
    }
    if (guest_vendor() == NESTED_VENDOR_NONE) {
        return 0;
    }
    /*
     * Recording now, the observers would sample every nested entry and
     * exit while the migration runs; they are opened now, so that one
     * that cannot be fails while the source still runs, and the final
     * stop enables them (with stop-settle-ms=0, no stop does).
     */
    if (observers_open(&local)) {
        if (mirror_config.stop_settle_ms) {
            observer_use = OBSERVERS_AWAITED;
            return 0;
        }
        if (observers_enable(&local)) {
            observer_use = OBSERVERS_MIGRATING;
            return 0;
        }
    }
    if (best_effort()) {
        warn_report_err(local);
        warn_report("nested-kvm: event-migration=best-effort: an event L1 "
                    "is injecting into L2 at the final stop may be lost");
        return 0;
    }
    error_propagate_prepend(errp, local, STRICT_REFUSAL);
    return -1;
}

static int migration_notify(NotifierWithReturn *n, MigrationEvent *e,
                            Error **errp)
{
    if (e->type == MIG_EVENT_PRECOPY_SETUP) {
        return migration_setup(errp);
    }
    kernel_migrating = false;
    if (observer_use == OBSERVERS_AWAITED) {
        observers_disarm();     /* it ended before its final stop */
        return 0;
    }
    if (observer_use != OBSERVERS_MIGRATING) {
        return 0;
    }
    /*
     * A VM that stays stopped keeps the records of the stop that paused
     * it, for a later save.  Observers armed on a VM that was already
     * stopped recorded nothing.
     */
    if (runstate_is_running() || !migrating_since_stop) {
        observers_disarm();
    } else {
        observer_use = OBSERVERS_STOPPED;
    }
    return 0;
}

static void vm_state_changed(void *opaque, bool running, RunState state)
{
    if (running && observer_use == OBSERVERS_STOPPED) {
        observers_disarm();
    }
}

/*
 * On the vCPU's thread, while the VM runs.  A full sync would tell the
 * same, but then everything it read is written back before the vCPU
 * runs on, soft events included, which KVM_GET_VCPU_EVENTS cannot
 * describe.  A vCPU whose guest mode cannot be read settles like one in
 * guest mode.
 */
static void probe_guest_mode(CPUState *cs, run_on_cpu_data data)
{
    X86CPU *cpu = X86_CPU(cs);

    cpu->env.nested_mirror->settling = kvm_vcpu_in_guest_mode(cpu) != 0;
    if (--probes_pending == 0) {
        qemu_cond_broadcast(&probes_done);
    }
}

/*
 * Every vCPU that has not crossed a chain boundary yet is probed, all
 * at once: each one's exit from KVM_RUN, the slow part, overlaps the
 * others'.  One that crossed a boundary while the observers were being
 * enabled is settled wherever it is.
 */
static void probe_guest_modes(void)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        m->settling = true;
        if (!nested_observer_crossed_boundary(m->observer)) {
            probes_pending++;
            async_run_on_cpu(cs, probe_guest_mode, RUN_ON_CPU_NULL);
        }
    }
    while (probes_pending) {
        qemu_cond_wait_bql(&probes_done);
    }
}

/* Whether any vCPU in guest mode has not crossed a chain boundary yet */
static bool stop_unsettled(void)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        NestedMirror *m = X86_CPU(cs)->env.nested_mirror;

        if (m->settling && !nested_observer_crossed_boundary(m->observer)) {
            return true;
        }
    }
    return false;
}

/*
 * Whether this stop arms the observers: any stop of a migration that
 * awaits it, else a stop that may precede a save.  Shutdown saves
 * nothing; the kernel reports a vCPU stopped anywhere in the window.
 */
static bool stop_arms(RunState state)
{
    if (kernel_source() || !mirror_config.stop_settle_ms ||
        state == RUN_STATE_SHUTDOWN) {
        return false;
    }
    if (observer_use == OBSERVERS_AWAITED) {
        return true;
    }
    return observer_use == OBSERVERS_OFF &&
           state != RUN_STATE_FINISH_MIGRATE &&
           guest_vendor() != NESTED_VENDOR_NONE;
}

/*
 * Records exist only from arming on, so a vCPU inside L1's delivery
 * chain when the observers are armed could not be judged at a save.
 * Each vCPU in guest mode runs on until it crosses a chain boundary, for
 * at most stop-settle-ms; one that does not is judged from what there
 * is, and strict refuses to save it if that does not decide.
 */
void nested_mirror_prepare_stop(RunState state)
{
    Error *local = NULL;
    int64_t start, deadline;
    bool unsettled;

    if (!stop_arms(state)) {
        return;
    }
    g_clear_pointer(&stop_unobserved_why, g_free);
    start = qemu_clock_get_us(QEMU_CLOCK_REALTIME);
    if (!(observer_use == OBSERVERS_AWAITED ? observers_enable(&local)
                                            : observers_arm(&local))) {
        /* Not an error yet: a later save reports it, if there is one. */
        stop_unobserved_why = g_strdup_printf("the observer could not be "
                                              "armed at the stop: %s",
                                              error_get_pretty(local));
        trace_nested_mirror_stop_unobserved(error_get_pretty(local));
        error_free(local);
        return;
    }
    trace_nested_mirror_stop_armed(observer_use == OBSERVERS_AWAITED,
        qemu_clock_get_us(QEMU_CLOCK_REALTIME) - start);
    observer_use = observer_use == OBSERVERS_AWAITED ? OBSERVERS_MIGRATING
                                                     : OBSERVERS_STOPPED;
    start = qemu_clock_get_us(QEMU_CLOCK_REALTIME);
    probe_guest_modes();
    trace_nested_mirror_stop_probed(
        qemu_clock_get_us(QEMU_CLOCK_REALTIME) - start);
    start = qemu_clock_get_us(QEMU_CLOCK_REALTIME);
    deadline = start + mirror_config.stop_settle_ms * 1000LL;
    while ((unsettled = stop_unsettled()) &&
           qemu_clock_get_us(QEMU_CLOCK_REALTIME) < deadline) {
        g_usleep(100);
    }
    trace_nested_mirror_stop_settled(RunState_str(state), !unsettled,
        qemu_clock_get_us(QEMU_CLOCK_REALTIME) - start);
}

/*
 * A save of a vCPU in guest mode with no observer (the stop that preceded
 * it did not arm one) cannot tell whether L1's event is in flight.
 */
bool nested_mirror_unobserved(NestedMirror *m)
{
    return m->model.guest_mode && !watching(m) && !kernel_source() &&
           !best_effort();
}

const char *nested_mirror_unobserved_why(void)
{
    if (!mirror_config.stop_settle_ms) {
        return "stop-settle-ms=0: a stop arms no observer";
    }
    return stop_unobserved_why ? stop_unobserved_why
                               : "the stop armed no observer";
}

void nested_mirror_migration_init(const NestedMirrorConfig *config)
{
    mirror_config = *config;
    qemu_cond_init(&probes_done);
    migration_add_notifier(&migration_notifier, migration_notify);
    qemu_add_vm_change_state_handler(vm_state_changed, NULL);
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

/*
 * The kernel's report, with x-unknown-verdicts spoiling it only during a
 * migration, as the observer's verdicts exist only then.
 */
static bool judge_kernel(X86CPU *cpu, NestedMirror *m, GError **errp)
{
    CPUX86State *env = &cpu->env;
    NestedWindow w = { .verdict = NESTED_WINDOW_CLEAR };

    if (kernel_migrating && m->model.guest_mode) {
        force_unknown(&w);
    }
    if (w.verdict == NESTED_WINDOW_UNKNOWN) {
        g_set_error(errp, NESTED_EVENT_ERROR,
                    NESTED_EVENT_ERROR_UNREPRESENTABLE,
                    "guest_mode=1: cannot tell whether L1's event is in "
                    "flight: %s", w.why);
        return false;
    }
    return nested_kernel_apply(&m->model, &m->kernel_soft, &m->kernel_svm,
                               env->eip, env->segs[R_CS].base, errp);
}

static bool judge_observer(X86CPU *cpu, NestedMirror *m, GError **errp)
{
    CPUX86State *env = &cpu->env;

    /* Outside guest mode nothing of L1's can be in flight. */
    if (!watching(m) || !m->model.guest_mode) {
        return true;
    }
    nested_observer_judge(m->observer, m->model.vendor, &m->window);
    force_unknown(&m->window);
    return nested_window_apply(&m->model, &m->window, env->eip,
                               env->segs[R_CS].base, &m->view, errp);
}

bool nested_mirror_judge(X86CPU *cpu, NestedMirror *m, GError **errp)
{
    g_autoptr(GError) err = NULL;

    if (kernel_source() ? judge_kernel(cpu, m, &err)
                        : judge_observer(cpu, m, &err)) {
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
