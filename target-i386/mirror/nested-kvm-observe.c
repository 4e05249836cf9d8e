/*
 * nested-kvm: watch KVM's nested tracepoints while a migration runs
 *
 * KVM_GET_VCPU_EVENTS and KVM_GET_NESTED_STATE do not say that an event
 * L1 injected into L2 is waiting for re-injection (docs/hidden-window.rst).
 * From migration setup until the migration ends, each vCPU thread gets
 * perf tracepoint events on kvm_nested_vmenter, kvm_nested_vmexit and
 * kvm_nested_vmexit_inject, all written into one overwrite-mode ring,
 * newest record first.  When the mirror pulls a stopped vCPU's state,
 * the last records say whether the stop landed in that window
 * (nested-window.c) and the model gets the event back with its origin.
 *
 * Nothing here runs outside a migration, so KVM_RUN costs what it costs
 * under -accel kvm.  With event-migration=strict a migration that cannot
 * be observed fails at setup, while the source still runs, and one whose
 * records do not decide fails when the vCPU state is saved (the source
 * then runs on).  best-effort migrates anyway, as stock QEMU would.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "migration/misc.h"
#include "hw/core/cpu.h"
#include "cpu.h"
#include "accel/nested-kvm/nested-kvm.h"
#include "nested-kvm-mirror.h"
#include "nested-kvm-mirror-int.h"
#include "trace.h"

#include <linux/perf_event.h>
#include <sys/syscall.h>

/* Data pages per vCPU ring (a power of two): a few hundred records. */
#define OBSERVE_RING_PAGES 8
#define OBSERVE_MAX_RECORDS 512

static const char *const tracefs_roots[] = {
    "/sys/kernel/tracing", "/sys/kernel/debug/tracing",
};

static NestedTraceFormat observe_format;
static NotifierWithReturn observe_notifier;

static bool observe_load_one(NestedTraceKind kind, Error **errp)
{
    const char *const *names = nested_trace_names(kind);
    g_autoptr(GError) gerr = NULL;

    for (size_t n = 0; names[n]; n++) {
        for (size_t r = 0; r < G_N_ELEMENTS(tracefs_roots); r++) {
            g_autofree char *path = g_strdup_printf("%s/events/kvm/%s/format",
                                                    tracefs_roots[r],
                                                    names[n]);
            g_autofree char *text = NULL;

            if (!g_file_get_contents(path, &text, NULL, NULL)) {
                continue;
            }
            if (!nested_trace_parse_format(&observe_format, kind, text,
                                           &gerr)) {
                error_setg(errp, "%s: %s", path, gerr->message);
                return false;
            }
            return true;
        }
    }
    error_setg(errp, "no readable tracefs format for kvm:%s under %s or %s "
               "(tracefs not mounted, or not readable by this process)",
               names[0], tracefs_roots[0], tracefs_roots[1]);
    return false;
}

static bool observe_load_formats(Error **errp)
{
    memset(&observe_format, 0, sizeof(observe_format));
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        if (!observe_load_one(k, errp)) {
            return false;
        }
    }
    return true;
}

static int perf_open(uint16_t id, int tid)
{
    struct perf_event_attr attr = {
        .type = PERF_TYPE_TRACEPOINT,
        .size = sizeof(attr),
        .config = id,
        .sample_period = 1,
        .sample_type = PERF_SAMPLE_RAW,
        /* Overwrite the oldest records: only the newest ones matter. */
        .write_backward = 1,
    };

    return syscall(__NR_perf_event_open, &attr, tid, -1, -1,
                   PERF_FLAG_FD_CLOEXEC);
}

void nested_kvm_observe_release(NestedKVMMirror *m)
{
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        if (m->observe_fd[k] > 0) {
            close(m->observe_fd[k]);
        }
        m->observe_fd[k] = -1;
    }
    if (m->observe_ring) {
        munmap(m->observe_ring, m->observe_ring_len);
        m->observe_ring = NULL;
    }
    m->observing = false;
}

static bool observe_arm_cpu(CPUState *cs, NestedKVMMirror *m, Error **errp)
{
    size_t page = qemu_real_host_page_size();

    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        m->observe_fd[k] = -1;
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        int fd = perf_open(observe_format.ev[k].id, cs->thread_id);

        if (fd < 0) {
            error_setg_errno(errp, errno, "perf_event_open(kvm:%s) for "
                             "vCPU %d (thread %d); tracepoint samples need "
                             "CAP_PERFMON or kernel.perf_event_paranoid=-1",
                             nested_trace_names(k)[0], cs->cpu_index,
                             cs->thread_id);
            goto fail;
        }
        m->observe_fd[k] = fd;
        if (k == 0) {
            m->observe_ring_len = (1 + OBSERVE_RING_PAGES) * page;
            /* PROT_READ alone selects the overwriting ring. */
            m->observe_ring = mmap(NULL, m->observe_ring_len, PROT_READ,
                                   MAP_SHARED, fd, 0);
            if (m->observe_ring == MAP_FAILED) {
                m->observe_ring = NULL;
                error_setg_errno(errp, errno, "mmap of the perf ring for "
                                 "vCPU %d", cs->cpu_index);
                goto fail;
            }
        } else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT,
                         m->observe_fd[0]) < 0) {
            error_setg_errno(errp, errno, "PERF_EVENT_IOC_SET_OUTPUT for "
                             "vCPU %d", cs->cpu_index);
            goto fail;
        }
    }
    m->observing = true;
    return true;

fail:
    nested_kvm_observe_release(m);
    return false;
}

static void observe_disarm_all(void)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        NestedKVMMirror *m = X86_CPU(cs)->env.nested_kvm;

        if (m && m->observing) {
            nested_kvm_observe_release(m);
        }
    }
    trace_nested_kvm_observe_disarm();
}

static bool observe_arm_all(Error **errp)
{
    CPUState *cs;

    if (!observe_load_formats(errp)) {
        return false;
    }
    CPU_FOREACH(cs) {
        if (!observe_arm_cpu(cs, nested_kvm_mirror_get(X86_CPU(cs)), errp)) {
            observe_disarm_all();
            return false;
        }
    }
    trace_nested_kvm_observe_arm();
    return true;
}

/* Only a vCPU with SVM or VMX can run an L2; without one nothing hides. */
static bool observe_vendor(NestedVendor *vendor)
{
    CPUState *cs;

    *vendor = NESTED_VENDOR_NONE;
    CPU_FOREACH(cs) {
        CPUX86State *env = &X86_CPU(cs)->env;

        if (cpu_has_svm(env)) {
            *vendor = NESTED_VENDOR_SVM;
        } else if (cpu_has_vmx(env)) {
            *vendor = NESTED_VENDOR_VMX;
        }
    }
    return *vendor != NESTED_VENDOR_NONE;
}

static int observe_setup(Error **errp)
{
    NestedKVMEventMigration mode = nested_kvm_event_migration;
    Error *local = NULL;
    NestedVendor vendor;

    if (!observe_vendor(&vendor)) {
        return 0;
    }
    if (vendor == NESTED_VENDOR_VMX) {
        error_setg(&local, "the in-flight observer reads SVM's EXITINTINFO "
                   "and cannot watch VMX's IDT-vectoring information");
    } else if (observe_arm_all(&local)) {
        return 0;
    }
    if (mode == NESTED_KVM_EVENT_MIGRATION_BEST_EFFORT) {
        warn_report_err(local);
        warn_report("nested-kvm: event-migration=best-effort: an event L1 "
                    "is injecting into L2 at the final stop may be lost");
        return 0;
    }
    error_propagate_prepend(errp, local, "nested-kvm: event-migration="
                            "strict refuses to migrate: ");
    return -1;
}

static int observe_notify(NotifierWithReturn *n, MigrationEvent *e,
                          Error **errp)
{
    if (e->type == MIG_EVENT_PRECOPY_SETUP) {
        return observe_setup(errp);
    }
    observe_disarm_all();
    return 0;
}

void nested_kvm_observe_init(void)
{
    migration_add_notifier(&observe_notifier, observe_notify);
}

/* Copy len bytes at stream position pos out of the ring, wrapping. */
static void ring_copy(const uint8_t *data, uint64_t size, uint64_t pos,
                      void *dst, size_t len)
{
    uint8_t *out = dst;

    for (size_t i = 0; i < len; i++) {
        out[i] = data[(pos + i) & (size - 1)];
    }
}

/*
 * A backward ring grows toward lower stream positions: data_head is the
 * newest record, and -data_head bytes were written in all.
 */
static size_t observe_read(NestedKVMMirror *m, NestedTraceRecord *recs,
                           bool *complete, Error **errp)
{
    const struct perf_event_mmap_page *pg = m->observe_ring;
    const uint8_t *data = (const uint8_t *)m->observe_ring + pg->data_offset;
    uint64_t size = pg->data_size;
    uint64_t head = qatomic_load_acquire(&pg->data_head);
    uint64_t written = -head;
    uint64_t pos = head, end = head + MIN(size, written);
    size_t n = 0;

    *complete = written <= size;
    while (end - pos >= sizeof(struct perf_event_header) &&
           n < OBSERVE_MAX_RECORDS) {
        struct perf_event_header hdr;
        uint8_t rec[512];
        uint32_t raw_size;
        g_autoptr(GError) gerr = NULL;

        ring_copy(data, size, pos, &hdr, sizeof(hdr));
        if (hdr.size < sizeof(hdr) || hdr.size > end - pos) {
            *complete = false;      /* the oldest record was cut */
            break;
        }
        if (hdr.type == PERF_RECORD_SAMPLE && hdr.size <= sizeof(rec)) {
            ring_copy(data, size, pos, rec, hdr.size);
            memcpy(&raw_size, rec + sizeof(hdr), sizeof(raw_size));
            if (raw_size <= hdr.size - sizeof(hdr) - sizeof(raw_size)) {
                if (nested_trace_decode(&observe_format,
                                        rec + sizeof(hdr) + sizeof(raw_size),
                                        raw_size, &recs[n], &gerr)) {
                    n++;
                } else if (gerr) {
                    error_setg(errp, "%s", gerr->message);
                    return 0;
                }
            }
        }
        pos += hdr.size;
    }
    return n;
}

bool nested_kvm_observe_apply(X86CPU *cpu, NestedKVMMirror *m, GError **errp)
{
    CPUX86State *env = &cpu->env;
    g_autofree NestedTraceRecord *recs = NULL;
    Error *local = NULL;
    bool complete;
    size_t n;

    /* Outside guest mode nothing of L1's can be in flight. */
    if (!m->observing || !m->model.guest_mode) {
        return true;
    }
    recs = g_new0(NestedTraceRecord, OBSERVE_MAX_RECORDS);
    n = observe_read(m, recs, &complete, &local);
    if (!local && nested_kvm_unknown_verdicts) {
        nested_kvm_unknown_verdicts--;
        error_setg(&local, "verdict forced unknown (x-unknown-verdicts)");
    }
    if (local) {
        m->window.verdict = NESTED_WINDOW_UNKNOWN;
        g_strlcpy(m->window.why, error_get_pretty(local),
                  sizeof(m->window.why));
        error_free(local);
    } else {
        nested_window_judge(recs, n, complete, &m->window);
    }
    trace_nested_kvm_observe_verdict(CPU(cpu)->cpu_index, n, complete,
                                     m->window.verdict,
                                     m->window.exit_int_info);
    return nested_window_apply(&m->model, &m->window, env->eip,
                               env->segs[R_CS].base, m->svm_next_rip, errp);
}
