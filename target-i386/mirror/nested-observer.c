/*
 * nested-kvm: watch KVM's nested tracepoints on one vCPU thread
 *
 * KVM_GET_VCPU_EVENTS and KVM_GET_NESTED_STATE do not say that an event
 * L1 injected into L2 is waiting for re-injection (docs/hidden-window.rst).
 * An observer opens perf tracepoint events on kvm_nested_vmenter and
 * kvm_nested_vmexit for one vCPU thread, both written into one
 * overwrite-mode ring, newest record first, and counts
 * kvm_nested_vmexit_inject.  When the vCPU is stopped, the last records
 * say whether the stop landed in that window (nested-window.c).
 *
 * The observer knows nothing of CPUs, policies or migrations: the mirror
 * decides when to create one and what a verdict means
 * (nested-mirror-migration.c).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/atomic.h"
#include "nested-observer.h"
#include "../nested-tracefs.h"
#include "nested-observer-helper.h"
#include "trace.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

/* Data pages per vCPU ring (a power of two): a few hundred records. */
#define OBSERVER_RING_PAGES 8
#define OBSERVER_MAX_RECORDS 512
/* Larger than either sampled tracepoint's raw sample */
#define OBSERVER_MAX_SAMPLE 512

struct NestedObserver {
    int cpu_index;
    int fd[NESTED_TRACE__MAX];
    void *ring;
    size_t ring_len;
    /* data_head when the records began to count (nested_observer_forget) */
    uint64_t start;
    NestedTraceFormat format;
};

bool nested_observer_load_format(NestedTraceFormat *fmt, const char *helper,
                                 Error **errp)
{
    char *texts[NESTED_TRACE__MAX];
    g_autoptr(GError) gerr = NULL;
    bool ok;

    if (helper) {
        if (!nested_observer_helper_formats(helper, texts, errp)) {
            return false;
        }
    } else if (!nested_tracefs_read_formats(texts, &gerr)) {
        error_setg(errp, "%s", gerr->message);
        return false;
    }
    ok = nested_tracefs_parse_formats(fmt, texts, &gerr);
    nested_tracefs_free_formats(texts);
    if (!ok) {
        error_setg(errp, "tracefs format: %s", gerr->message);
    }
    return ok;
}

static int observer_perf_open(NestedTraceKind kind, uint16_t id, int tid)
{
    struct perf_event_attr attr;

    nested_tracefs_perf_attr(&attr, kind, id);
    return syscall(__NR_perf_event_open, &attr, tid, -1, -1,
                   PERF_FLAG_FD_CLOEXEC);
}

void nested_observer_free(NestedObserver *o)
{
    if (!o) {
        return;
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        if (o->fd[k] >= 0) {
            close(o->fd[k]);
        }
    }
    if (o->ring) {
        munmap(o->ring, o->ring_len);
    }
    g_free(o);
}

/*
 * The VMRUNs' event owns the ring and the exits from L2 write into it;
 * reflected exits are only counted (nested_tracefs_perf_attr()).
 */
static bool observer_adopt(NestedObserver *o, NestedTraceKind kind, int fd,
                           Error **errp)
{
    o->fd[kind] = fd;
    if (kind == NESTED_TRACE_VMEXIT_INJECT) {
        return true;
    }
    if (kind != NESTED_TRACE_VMENTER) {
        if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, o->fd[0]) < 0) {
            error_setg_errno(errp, errno, "PERF_EVENT_IOC_SET_OUTPUT for "
                             "vCPU %d", o->cpu_index);
            return false;
        }
        return true;
    }
    o->ring_len = (1 + OBSERVER_RING_PAGES) * qemu_real_host_page_size();
    /* PROT_READ alone selects the overwriting ring. */
    o->ring = mmap(NULL, o->ring_len, PROT_READ, MAP_SHARED, fd, 0);
    if (o->ring == MAP_FAILED) {
        o->ring = NULL;
        error_setg_errno(errp, errno, "mmap of the perf ring for vCPU %d",
                         o->cpu_index);
        return false;
    }
    return true;
}

static bool observer_open(NestedObserver *o, int tid,
                          int fds[NESTED_TRACE__MAX], Error **errp)
{
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        fds[k] = observer_perf_open(k, o->format.ev[k].id, tid);
        if (fds[k] < 0) {
            error_setg_errno(errp, errno, "perf_event_open(kvm:%s) for vCPU "
                             "%d (thread %d); tracepoint samples need "
                             "CAP_PERFMON, kernel.perf_event_paranoid=-1 or "
                             "the observer helper (observer-helper=)",
                             nested_trace_names(k)[0], o->cpu_index, tid);
            for (int j = 0; j < k; j++) {
                close(fds[j]);
            }
            return false;
        }
    }
    return true;
}

/*
 * Exits from L2 first, VMRUNs next: a VMRUN recorded is then followed
 * by every exit after it, so that the newest record never hides a
 * delivery cut short (an exit recorded before its VMRUN only leaves a
 * chain without a start, judged unknown).  Reflected exits last, as
 * they count as a boundary only once both are recorded.
 */
static const NestedTraceKind observer_enable_order[] = {
    NESTED_TRACE_VMEXIT, NESTED_TRACE_VMENTER, NESTED_TRACE_VMEXIT_INJECT,
};

bool nested_observer_enable(NestedObserver *o, Error **errp)
{
    QEMU_BUILD_BUG_ON(ARRAY_SIZE(observer_enable_order) != NESTED_TRACE__MAX);
    for (int i = 0; i < NESTED_TRACE__MAX; i++) {
        NestedTraceKind k = observer_enable_order[i];

        if (ioctl(o->fd[k], PERF_EVENT_IOC_ENABLE, 0) < 0) {
            error_setg_errno(errp, errno, "PERF_EVENT_IOC_ENABLE of kvm:%s "
                             "for vCPU %d", nested_trace_names(k)[0],
                             o->cpu_index);
            return false;
        }
    }
    return true;
}

NestedObserver *nested_observer_new(const NestedTraceFormat *fmt,
                                    const char *helper, int tid,
                                    int cpu_index, Error **errp)
{
    g_autoptr(NestedObserver) o = g_new0(NestedObserver, 1);
    int fds[NESTED_TRACE__MAX];
    bool opened;

    o->cpu_index = cpu_index;
    o->format = *fmt;
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        o->fd[k] = -1;
    }
    opened = helper ? nested_observer_helper_open(helper, tid, cpu_index, fds,
                                                  errp)
                    : observer_open(o, tid, fds, errp);
    if (!opened) {
        return NULL;
    }
    for (int k = 0; k < NESTED_TRACE__MAX; k++) {
        if (!observer_adopt(o, k, fds[k], errp)) {
            /* the rest are not the observer's yet */
            for (int j = k + 1; j < NESTED_TRACE__MAX; j++) {
                close(fds[j]);
            }
            return NULL;
        }
    }
    return g_steal_pointer(&o);
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
 * newest record, and start - data_head bytes were written since the
 * records began to count.
 */
static size_t observer_read(NestedObserver *o, NestedTraceRecord *recs,
                            bool *complete, GError **errp)
{
    const struct perf_event_mmap_page *pg = o->ring;
    const uint8_t *data = (const uint8_t *)o->ring + pg->data_offset;
    uint64_t size = pg->data_size;
    uint64_t head = qatomic_load_acquire(&pg->data_head);
    uint64_t written = o->start - head;
    uint64_t pos = head, end = head + MIN(size, written);
    size_t n = 0;

    *complete = written <= size;
    while (end - pos >= sizeof(struct perf_event_header) &&
           n < OBSERVER_MAX_RECORDS) {
        struct perf_event_header hdr;
        uint8_t rec[OBSERVER_MAX_SAMPLE];
        uint32_t raw_size;

        ring_copy(data, size, pos, &hdr, sizeof(hdr));
        if (hdr.size < sizeof(hdr) || hdr.size > end - pos) {
            *complete = false;      /* the oldest record was cut */
            break;
        }
        if (hdr.type == PERF_RECORD_SAMPLE && hdr.size <= sizeof(rec)) {
            ring_copy(data, size, pos, rec, hdr.size);
            memcpy(&raw_size, rec + sizeof(hdr), sizeof(raw_size));
            if (raw_size <= hdr.size - sizeof(hdr) - sizeof(raw_size)) {
                if (nested_trace_decode(&o->format,
                                        rec + sizeof(hdr) + sizeof(raw_size),
                                        raw_size, &recs[n], errp)) {
                    n++;
                } else if (*errp) {
                    return 0;
                }
            }
        }
        pos += hdr.size;
    }
    return n;
}

void nested_observer_forget(NestedObserver *o)
{
    const struct perf_event_mmap_page *pg = o->ring;

    o->start = qatomic_load_acquire(&pg->data_head);
}

/*
 * Counted, not read from the ring: the ring may only be read while the
 * vCPU is stopped, but an event's count can be read at any time.
 */
static uint64_t observer_count(NestedObserver *o, NestedTraceKind kind)
{
    uint64_t count;

    if (read(o->fd[kind], &count, sizeof(count)) != sizeof(count)) {
        return 0;
    }
    return count;
}

bool nested_observer_crossed_boundary(NestedObserver *o)
{
    return observer_count(o, NESTED_TRACE_VMENTER) ||
           observer_count(o, NESTED_TRACE_VMEXIT_INJECT);
}

void nested_observer_judge(NestedObserver *o, NestedVendor vendor,
                           NestedWindow *w)
{
    g_autofree NestedTraceRecord *recs =
        g_new0(NestedTraceRecord, OBSERVER_MAX_RECORDS);
    g_autoptr(GError) gerr = NULL;
    bool complete;
    size_t n;

    n = observer_read(o, recs, &complete, &gerr);
    if (gerr) {
        memset(w, 0, sizeof(*w));
        w->verdict = NESTED_WINDOW_UNKNOWN;
        g_strlcpy(w->why, gerr->message, sizeof(w->why));
    } else {
        nested_window_judge(vendor, recs, n, complete, w);
    }
    trace_nested_observer_judge(o->cpu_index, n, complete, w->verdict,
                                w->event_info);
}
