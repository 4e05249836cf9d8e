/*
 * nested-kvm: mirror KVM's injected-event state into the event model
 *
 * At every get of the vCPU state the mirror rebuilds the model from what
 * KVM reported (vCPU events, nested state, RIP and CS base).  It issues
 * no ioctl of its own: it reads what kvm_arch_get_registers() already
 * fetched, and at a full put after an incoming migration it edits what
 * kvm_arch_put_registers() is about to write, following the restore
 * plan that post_load computed, so that KVM re-delivers an in-flight
 * L1-origin event as L1's, not as its own.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "qemu/timer.h"
#include "cpu.h"
#include "system/kvm.h"
#include "system/kvm_int.h"
#include "kvm/kvm_i386.h"
#include "svm.h"
#include "../nested-import.h"
#include "../nested-state.h"
#include "nested-mirror-int.h"
#include "trace.h"

/* L1's RIP in the vmcb12 image of the kvm_nested_state SVM data */
#define NESTED_MIRROR_VMCB_SAVE_RIP offsetof(struct vmcb, save.rip)
QEMU_BUILD_BUG_ON(NESTED_MIRROR_VMCB_SAVE_RIP != 0x578); /* APM B-2 */

static bool nested_mirror_enabled;
static NestedKvmStateSource nested_mirror_source =
    NESTED_KVM_STATE_SOURCE_OBSERVER;

bool nested_mirror_is_set_up(void)
{
    return nested_mirror_enabled;
}

NestedKvmStateSource nested_mirror_state_source(void)
{
    return nested_mirror_source;
}

/*
 * KVM offers SVM or VMX to its guests only with kvm_amd or kvm_intel's
 * nested=1.  Without it no guest is a hypervisor and there is nothing
 * for nested-kvm to carry: an operator who asked for it on such a host
 * has a misconfigured host, which is better said at start than found
 * at the first migration.
 */
static bool nested_mirror_host_nests(Error **errp)
{
    bool svm = kvm_arch_get_supported_cpuid(kvm_state, 0x80000001, 0, R_ECX) &
               CPUID_EXT3_SVM;
    bool vmx = kvm_arch_get_supported_cpuid(kvm_state, 1, 0, R_ECX) &
               CPUID_EXT_VMX;

    if (!svm && !vmx) {
        error_setg(errp, "nested-kvm: this host's KVM offers neither SVM nor "
                   "VMX to its guests (KVM_GET_SUPPORTED_CPUID), so no guest "
                   "can be a hypervisor: load kvm_amd or kvm_intel with "
                   "nested=1, or use -accel kvm");
        return false;
    }
    if (kvm_max_nested_state_length() <= 0) {
        error_setg(errp, "nested-kvm: this host's KVM has no "
                   "KVM_CAP_NESTED_STATE, so a guest hypervisor's L2 "
                   "cannot migrate at all; use -accel kvm");
        return false;
    }
    return true;
}

/*
 * A kernel that reports the origin of an NMI it re-injects and the soft
 * events it re-injects makes the observer unnecessary: no tracepoints,
 * no privilege, nothing armed.  Both bits are needed for that, and KVM
 * takes them only before the first vCPU exists, which is now.
 */
static bool nested_mirror_choose_source(NestedKvmStateSource want,
                                        Error **errp)
{
    int ret = 0;

    if (want != NESTED_KVM_STATE_SOURCE_OBSERVER) {
        ret = kvm_enable_nested_event_state(
            NESTED_KVM_CAP_X86_NESTED_EVENT_STATE, NESTED_KERNEL_EVENT_NEEDED);
    }
    nested_mirror_source = ret > 0 ? NESTED_KVM_STATE_SOURCE_KERNEL
                                   : NESTED_KVM_STATE_SOURCE_OBSERVER;
    trace_nested_mirror_state_source(
        NestedKvmStateSource_str(want),
        NestedKvmStateSource_str(nested_mirror_source), ret);
    if (ret > 0 || want == NESTED_KVM_STATE_SOURCE_OBSERVER) {
        return true;
    }
    if (want == NESTED_KVM_STATE_SOURCE_KERNEL) {
        if (ret < 0) {
            error_setg_errno(errp, -ret, "nested-kvm: state-source=kernel: "
                             "KVM refused to enable "
                             "KVM_CAP_X86_NESTED_EVENT_STATE");
        } else {
            error_setg(errp, "nested-kvm: state-source=kernel, but this "
                       "host's KVM does not offer "
                       "KVM_CAP_X86_NESTED_EVENT_STATE with its SOFT and "
                       "SVM bits; use state-source=auto or observer");
        }
        return false;
    }
    if (ret < 0) {
        warn_report("nested-kvm: KVM offers KVM_CAP_X86_NESTED_EVENT_STATE "
                    "but refused to enable it (%s); watching its "
                    "tracepoints instead", strerror(-ret));
    }
    return true;
}

bool nested_mirror_setup(const NestedMirrorConfig *config, Error **errp)
{
    NestedMirrorConfig settled = *config;

    if (!nested_mirror_host_nests(errp) ||
        !nested_mirror_choose_source(config->state_source, errp)) {
        return false;
    }
    settled.state_source = nested_mirror_source;
    nested_mirror_enabled = true;
    nested_mirror_migration_init(&settled);
    return true;
}

/* Called by kvm_arch_init_vcpu(), before the vCPU's first state sync. */
void nested_mirror_init_vcpu(X86CPU *cpu)
{
    NestedMirror *m;

    if (nested_mirror_enabled) {
        m = g_new0(NestedMirror, 1);
        cpu->env.nested_mirror = m;
        /* What the cpu/nested-events subsection saves and loads */
        cpu->env.nested_events = &m->model;
    }
}

void nested_mirror_destroy_vcpu(X86CPU *cpu)
{
    NestedMirror *m = cpu->env.nested_mirror;

    if (!m) {
        /* A stream's scratch model that post_load never got to free */
        g_clear_pointer(&cpu->env.nested_events, g_free);
    } else {
        nested_observer_free(m->observer);
        g_free(m->error);
        g_free(m);
        cpu->env.nested_mirror = NULL;
        cpu->env.nested_events = NULL;
    }
}

void nested_mirror_caps(X86CPU *cpu, NestedRestoreCaps *caps)
{
    CPUX86State *env = &cpu->env;

    memset(caps, 0, sizeof(*caps));
    caps->vendor = nested_mirror_vendor(env);
    caps->vcpu_events = kvm_has_vcpu_events();
    caps->exception_payload =
        kvm_check_extension(kvm_state, KVM_CAP_EXCEPTION_PAYLOAD) > 0;
    caps->nested_state = kvm_max_nested_state_length() > 0;
    caps->triple_fault_event =
        kvm_check_extension(kvm_state, KVM_CAP_X86_TRIPLE_FAULT_EVENT) > 0;
    caps->smm = kvm_check_extension(kvm_state, KVM_CAP_X86_SMM) > 0;
    caps->nrips = env->features[FEAT_SVM] & CPUID_SVM_NRIPSAVE;
}

/*
 * QEMU's own state must stay what a kernel without the nested event state
 * reports: a soft event in env would travel in stock's fields and reach
 * a destination that re-injects it without its length or return address.
 * The mirror keeps the kernel's report and folds it into the model.
 */
void nested_mirror_vcpu_events(X86CPU *cpu, struct kvm_vcpu_events *events)
{
    NestedMirror *m = cpu->env.nested_mirror;

    if (!m) {
        return;
    }
    m->kernel_events = *events;
    nested_kernel_soft_strip(events);
    m->events = *events;
    m->have_events = true;
}

/*
 * The kernel's facts, then the nested state as a kernel without them
 * reports it: stock's cpu/nested_state section and every
 * KVM_SET_NESTED_STATE QEMU issues must not carry KVM_STATE_NESTED_SVM_EVENT,
 * which a kernel without it refuses.  Facts that fail their checks are
 * refused, but the blob is cleaned all the same.
 */
static bool nested_mirror_read_kernel(X86CPU *cpu, NestedMirror *m,
                                      GError **errp)
{
    CPUX86State *env = &cpu->env;
    bool ok = true;

    memset(&m->kernel_soft, 0, sizeof(m->kernel_soft));
    memset(&m->kernel_svm, 0, sizeof(m->kernel_svm));
    if (nested_mirror_source != NESTED_KVM_STATE_SOURCE_KERNEL) {
        return true;
    }
    if (env->nested_state) {
        uint8_t *blob = (uint8_t *)env->nested_state;

        ok = nested_kernel_svm_decode(blob, env->nested_state->size,
                                      &m->kernel_svm, errp);
        nested_kernel_svm_strip(blob, env->nested_state->size);
    }
    if (!ok || !m->have_events) {
        return ok;
    }
    if (!nested_kernel_soft_decode(&m->kernel_events, &m->kernel_soft,
                                   errp)) {
        return false;
    }
    trace_nested_mirror_kernel_state(CPU(cpu)->cpu_index,
                                     m->kernel_svm.reported,
                                     m->kernel_svm.event_flags,
                                     m->kernel_soft.queued,
                                     m->kernel_soft.vector,
                                     m->kernel_soft.next_rip);
    return true;
}

/*
 * The nested state goes first: it says whether the vCPU is in guest
 * mode, and so whether what KVM_GET_VCPU_EVENTS reports belongs to L1
 * or to L2.
 */
static bool nested_mirror_build_model(X86CPU *cpu, NestedMirror *m,
                                      GError **errp)
{
    CPUX86State *env = &cpu->env;

    nested_event_state_init(&m->model, nested_mirror_vendor(env));
    memset(&m->view, 0, sizeof(m->view));
    if (!m->have_events) {
        g_set_error(errp, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_INVALID,
                    "no vCPU events were read from KVM");
        return false;
    }
    if (env->nested_state &&
        (!nested_state_decode((const uint8_t *)env->nested_state,
                              env->nested_state->size, &m->view, errp) ||
         !nested_event_import_nested_state(&m->model, &m->view, env->eip,
                                           env->segs[R_CS].base, errp))) {
        return false;
    }
    if (!nested_event_import_vcpu_events(&m->model, &m->events, errp)) {
        return false;
    }
    nested_event_import_vmx_nmi_blocking(&m->model, &m->view);
    return true;
}

/*
 * The model can hold L2's NMIs blocked where KVM_GET_VCPU_EVENTS said
 * not (nested_event_import_vmx_nmi_blocking()).  env follows, so that
 * stock's cpu section carries it and any destination blocks them; the
 * snapshot follows too, so that nested_mirror_keep_events() does not
 * take it for QEMU's change and write back events that cannot hold a
 * soft event.
 */
static void nested_mirror_env_nmi_mask(X86CPU *cpu, NestedMirror *m)
{
    CPUX86State *env = &cpu->env;

    if (!nested_event_current_level(&m->model)->nmi_masked ||
        (env->hflags2 & HF2_NMI_MASK)) {
        return;
    }
    env->hflags2 |= HF2_NMI_MASK;
    m->synced.hflags2_nmi |= HF2_NMI_MASK;
    trace_nested_mirror_env_nmi_masked(CPU(cpu)->cpu_index,
                                       m->model.guest_mode);
}

static void nested_mirror_env_events(X86CPU *cpu, NestedMirrorEnvEvents *e)
{
    CPUX86State *env = &cpu->env;

    memset(e, 0, sizeof(*e));
    e->exception_payload = env->exception_payload;
    e->exception_nr = env->exception_nr;
    e->interrupt_injected = env->interrupt_injected;
    e->error_code = env->error_code;
    e->hflags_smm = env->hflags & HF_SMM_MASK;
    e->hflags2_nmi = env->hflags2 & (HF2_NMI_MASK | HF2_SMM_INSIDE_NMI_MASK);
    e->interrupt_request = CPU(cpu)->interrupt_request &
                           (CPU_INTERRUPT_SMI | CPU_INTERRUPT_INIT);
    e->sipi_vector = env->sipi_vector;
    e->exception_pending = env->exception_pending;
    e->exception_injected = env->exception_injected;
    e->exception_has_payload = env->exception_has_payload;
    e->has_error_code = env->has_error_code;
    e->soft_interrupt = env->soft_interrupt;
    e->nmi_injected = env->nmi_injected;
    e->nmi_pending = env->nmi_pending;
    e->triple_fault_pending = env->triple_fault_pending;
}

void nested_mirror_pull(X86CPU *cpu)
{
    NestedMirror *m = cpu->env.nested_mirror;
    int64_t start = qemu_clock_get_us(QEMU_CLOCK_REALTIME);
    const NestedEvent *ev;
    GError *err = NULL;

    if (!m) {
        return;
    }
    nested_mirror_env_events(cpu, &m->synced);
    m->have_synced = true;
    g_clear_pointer(&m->error, g_free);
    if (!nested_mirror_read_kernel(cpu, m, &err) ||
        !nested_mirror_build_model(cpu, m, &err) ||
        !nested_mirror_judge(cpu, m, &err)) {
        m->error = g_strdup(err->message);
        trace_nested_mirror_pull_failed(CPU(cpu)->cpu_index, m->error);
        g_error_free(err);
        return;
    }
    nested_mirror_env_nmi_mask(cpu, m);
    ev = &nested_event_current_level(&m->model)->injected;
    trace_nested_mirror_pull(CPU(cpu)->cpu_index, m->model.guest_mode,
                             ev->valid, nested_event_type_name(ev->type),
                             ev->vector,
                             ev->origin == NESTED_ORIGIN_L1 ? "L1" : "L0",
                             qemu_clock_get_us(QEMU_CLOCK_REALTIME) - start);
}

/*
 * KVM_SET_VCPU_EVENTS takes what kvm_put_vcpu_events() builds from env,
 * so the plan's events are written back into those env fields.
 */
static void nested_mirror_plan_to_env(CPUX86State *env,
                                      const struct kvm_vcpu_events *ev)
{
    env->exception_pending = ev->exception.pending;
    env->exception_injected = ev->exception.injected;
    env->exception_nr = (ev->exception.pending || ev->exception.injected) ?
                        ev->exception.nr : -1;
    env->has_error_code = ev->exception.has_error_code;
    env->error_code = ev->exception.error_code;
    env->exception_has_payload = ev->exception_has_payload;
    env->exception_payload = ev->exception_payload;
    env->interrupt_injected = ev->interrupt.injected ? ev->interrupt.nr : -1;
    env->soft_interrupt = ev->interrupt.soft;
    env->nmi_injected = ev->nmi.injected;
    env->nmi_pending = ev->nmi.pending;
    if (ev->nmi.masked) {
        env->hflags2 |= HF2_NMI_MASK;
    } else {
        env->hflags2 &= ~HF2_NMI_MASK;
    }
}

static int nested_mirror_apply_regs(X86CPU *cpu,
                                    const NestedRestorePlan *plan,
                                    Error **errp)
{
    CPUX86State *env = &cpu->env;

    for (int i = 0; i < plan->n_reg_edits; i++) {
        const NestedRegEdit *r = &plan->reg_edits[i];
        target_ulong *reg = r->reg == NESTED_REG_RIP ? &env->eip
                                                      : &env->segs[R_CS].base;

        trace_nested_mirror_reg_edit(CPU(cpu)->cpu_index, r->reg, r->value,
                                     r->expect_only);
        if (!r->expect_only) {
            *reg = r->value;
        } else if (*reg != r->value) {
            error_setg(errp, "nested-kvm: %s=0x%" PRIx64 ", the restore "
                       "plan needs 0x%" PRIx64,
                       r->reg == NESTED_REG_RIP ? "rip" : "cs.base",
                       *reg, r->value);
            return -EINVAL;
        }
    }
    return 0;
}

static bool plan_sets_rip(const NestedRestorePlan *plan)
{
    for (int i = 0; i < plan->n_reg_edits; i++) {
        if (plan->reg_edits[i].reg == NESTED_REG_RIP &&
            !plan->reg_edits[i].expect_only) {
            return true;
        }
    }
    return false;
}

/*
 * KVM_SET_NESTED_STATE takes a soft event's old RIP from the VMCB's
 * saved RIP, which KVM refreshes from KVM_SET_REGS only when the vCPU
 * next runs (6.1 and 6.12 alike): on a destination that never ran it is
 * the reset RIP.  Delivery still pushes the right NextRIP, but if it is
 * cut short again, KVM no longer recognises the event as the one at old
 * RIP and drops it.  Entering guest mode once with L2's RIP as L1's,
 * then leaving, leaves that RIP in vmcb01, which the real put copies
 * into vmcb02 before KVM snapshots it.  The sregs and the nested state
 * QEMU puts next overwrite everything else this touched.
 *
 * Returns the nested state to enter guest mode with (kvm.c does the
 * ioctls), or NULL when the put needs no priming.
 */
struct kvm_nested_state *nested_mirror_prime_state(X86CPU *cpu)
{
    CPUX86State *env = &cpu->env;
    NestedMirror *m = env->nested_mirror;
    struct kvm_nested_state *state;
    uint64_t rip = env->eip;

    if (!m || !m->prime_rip) {
        return NULL;
    }
    m->prime_rip = false;
    state = g_memdup2(env->nested_state, env->nested_state->size);
    memcpy((uint8_t *)state->data.svm + NESTED_MIRROR_VMCB_SAVE_RIP, &rip,
           sizeof(rip));
    trace_nested_mirror_prime_rip(CPU(cpu)->cpu_index, rip);
    return state;
}

static int nested_mirror_apply_state_edits(X86CPU *cpu,
                                           const NestedRestorePlan *plan,
                                           Error **errp)
{
    CPUX86State *env = &cpu->env;
    g_autoptr(GError) err = NULL;

    if (!env->nested_state ||
        !nested_state_apply_edits((uint8_t *)env->nested_state,
                                  env->nested_state->size, plan->state_edits,
                                  plan->n_state_edits, &err)) {
        error_setg(errp, "nested-kvm: cannot edit the nested state: %s",
                   err ? err->message : "no nested state on this vCPU");
        return -EINVAL;
    }
    for (int i = 0; i < plan->n_state_edits; i++) {
        trace_nested_mirror_state_edit(CPU(cpu)->cpu_index,
                                       plan->state_edits[i].field,
                                       plan->state_edits[i].value);
    }
    return 0;
}

int nested_mirror_push(X86CPU *cpu, int level, Error **errp)
{
    CPUX86State *env = &cpu->env;
    NestedMirror *m = env->nested_mirror;
    const NestedRestorePlan *plan;
    int ret;

    if (!m || level == KVM_PUT_RUNTIME_STATE) {
        return 0;
    }
    /* A reset or a load replaced the state that the records describe. */
    if (m->observer) {
        nested_observer_forget(m->observer);
    }
    if (!m->restore_pending || level < KVM_PUT_FULL_STATE) {
        return 0;
    }
    plan = &m->plan;
    trace_nested_mirror_push(CPU(cpu)->cpu_index, plan->set_vcpu_events,
                             plan->n_state_edits, plan->n_reg_edits);
    if (plan->n_state_edits) {
        ret = nested_mirror_apply_state_edits(cpu, plan, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (plan->set_vcpu_events) {
        nested_mirror_plan_to_env(env, &plan->events);
        m->put_shadow = plan->events.flags & KVM_VCPUEVENT_VALID_SHADOW;
    }
    ret = nested_mirror_apply_regs(cpu, plan, errp);
    if (ret < 0) {
        return ret;
    }
    m->prime_rip = m->model.guest_mode &&
                   m->model.vendor == NESTED_VENDOR_SVM &&
                   plan_sets_rip(plan);
    m->restore_pending = false;
    return 0;
}

/*
 * Without KVM_VCPUEVENT_VALID_PAYLOAD, KVM reports a pending exception
 * as injected.
 */
static bool nested_mirror_exception_pending(const struct kvm_vcpu_events *ev)
{
    return ev->exception.pending ||
           (ev->exception.injected &&
            !(ev->flags & KVM_VCPUEVENT_VALID_PAYLOAD));
}

/*
 * Every cpu_synchronize_state() on a running vCPU (a QMP query, a
 * migration that then fails and resumes the source) ends in a put at
 * the runtime level of what KVM_GET_VCPU_EVENTS reported, and that
 * cannot express a soft event KVM is re-injecting: a soft exception
 * reads back as none, a soft interrupt as a hardware one.  Writing it
 * back drops or retypes the event.  The vCPU has not run since that
 * get, so when QEMU changed none of the fields the put writes from,
 * KVM's own state is still exact and is kept.  Not when an exception
 * was pending, though: the KVM_SET_REGS of the same put clears a
 * pending exception, and only KVM_SET_VCPU_EVENTS brings it back.
 */
bool nested_mirror_keep_events(X86CPU *cpu, int level)
{
    NestedMirror *m = cpu->env.nested_mirror;
    NestedMirrorEnvEvents now;
    bool synced;

    if (!m) {
        return false;
    }
    synced = m->have_synced;
    m->have_synced = false;
    if (!synced || level != KVM_PUT_RUNTIME_STATE || m->restore_pending) {
        return false;
    }
    if (!m->have_events || nested_mirror_exception_pending(&m->events)) {
        return false;
    }
    nested_mirror_env_events(cpu, &now);
    if (memcmp(&now, &m->synced, sizeof(now))) {
        return false;
    }
    trace_nested_mirror_keep_events(CPU(cpu)->cpu_index);
    return true;
}

void nested_mirror_put_events(X86CPU *cpu, struct kvm_vcpu_events *events)
{
    NestedMirror *m = cpu->env.nested_mirror;

    if (!m || !m->put_shadow) {
        return;
    }
    events->flags |= KVM_VCPUEVENT_VALID_SHADOW;
    events->interrupt.shadow = m->plan.events.interrupt.shadow;
    m->put_shadow = false;
    trace_nested_mirror_put_shadow(CPU(cpu)->cpu_index,
                                   events->interrupt.shadow);
}
