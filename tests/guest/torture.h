/*
 * nkvm-guest: the "torture" scenario's parts that do not depend on the
 * vendor (torture.c), and what each hypervisor back end provides
 * (svm-torture.c, vmx-torture.c).  See torture.c for the scenario.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef NKVM_TORTURE_H
#define NKVM_TORTURE_H

#include "svm-lib.h"
#include "vmx-lib.h"

/*
 * L2 guest-physical window mapped with 4 KiB nested pages, and the pool
 * of L1 pages behind it (NWIN * POOL_PAGES pages, 1.5 MiB).  Both lie
 * above the image; vCPU i's are CPU_SLAB * i above vCPU 0's, so four
 * vCPUs stay below the 32 MiB the harness gives the VM.
 */
#define TORTURE_CPUS            4
#define CPU_SLAB                0x00400000ull
#define WINDOW_BASE             0x00800000ull
#define WIN_IDT                 0
#define WIN_GDT                 1
#define WIN_STACK               2
#define WIN_PML4                3       /* L2's own page tables */
#define WIN_PDPT                4
#define WIN_PD                  5
#define NWIN                    6
#define POOL_BASE               0x00a00000ull
#define POOL_PAGES              64      /* per window page */
#define WIN_GPA(c, w) \
    (WINDOW_BASE + (c)->index * CPU_SLAB + (uint64_t)(w) * PAGE_SIZE)
#define POOL_PA(c, w, i) \
    (POOL_BASE + (c)->index * CPU_SLAB + \
     ((uint64_t)(w) * POOL_PAGES + (i)) * PAGE_SIZE)

enum {
    EV_SOFT_INT, EV_INT3, EV_INTO, EV_NMI, EV_INTR, EV_GP, EV_PF,
    EV_TYPES
};

/* What each kind of event is, in terms both vendors can encode */
typedef enum EventClass {
    EVC_EXT_INTR, EVC_NMI, EVC_HW_EXCEPTION, EVC_SOFT_INTR, EVC_SOFT_EXCEPTION
} EventClass;

typedef struct EventKind {
    const char *name;
    EventClass cls;
    uint8_t vector;
    bool error_code;
    bool soft;          /* returns past the instruction L1 names */
} EventKind;

extern const EventKind torture_kinds[EV_TYPES];

typedef struct Stats {
    uint64_t injected;
    uint64_t delivered;
    uint64_t lost;
    uint64_t duplicated;
    uint64_t wrong_vector;
    uint64_t wrong_rip;
    uint64_t wrong_error_code;
    uint64_t wrong_cr2;
    uint64_t bad_exitintinfo;
    uint64_t unexpected_exit;
    uint64_t l1_npf;            /* rounds with a nested #PF L1 handled */
} Stats;

/*
 * What L2's handler records, found through the word at the bottom of
 * L2's stack page.  The first entry of a round fills in the fields;
 * every entry counts.  Offsets are used by the assembly in torture.c.
 */
typedef struct L2Record {
    uint64_t entries;           /* 0 */
    uint64_t vec;               /* 8 */
    uint64_t err;               /* 16 */
    uint64_t rip;               /* 24 */
    uint64_t cs;                /* 32 */
    uint64_t cr2;               /* 40 */
    uint64_t frame;             /* 48 */
    uint64_t use_iret;          /* 56: read by L2 */
} L2Record;

/* One vCPU's test hypervisor */
typedef struct TortureCpu {
    /* page-aligned, so every page below is (and the struct's size) */
    union {
        struct {
            uint8_t vmcb[PAGE_SIZE];
            uint8_t hsave[PAGE_SIZE];
            SvmGuestRegs regs;  /* L2's, between exits of one round */
        } svm;
        struct {
            uint8_t vmcs[PAGE_SIZE];
            uint8_t vmxon[PAGE_SIZE];
            VmxGuestRegs regs;
            bool launched;
        } vmx;
    } hv __attribute__((aligned(PAGE_SIZE)));
    /* its window's 4 KiB nested (NPT or EPT) page table */
    uint64_t win_pt[512] __attribute__((aligned(PAGE_SIZE)));
    uint64_t l2_pml4_image[512];
    uint64_t l2_pdpt_image[512];
    uint64_t l2_pd_image[512];
    volatile L2Record rec;      /* written by L2 behind C's back */
    Stats stats[EV_TYPES];
    uint64_t rounds, l1_nmi_checks, l1_nmi_corrupt, l1_nmi_lost;
    uint64_t l1_nmi_extra, nmi_vector_ignored;
    /* sent to the next vCPU; exits from L2 to take an IPI or NMI */
    uint64_t ipis_sent, nmis_sent, cross_exits, cross_exits_delivering;
    uint64_t prng_state;
    unsigned pool_idx[NWIN];
    unsigned index;             /* also its x2APIC ID */
    volatile bool ready;        /* its IDT is loaded: it can take IPIs */
    volatile bool done;         /* an AP stopped */
} TortureCpu;

/* One round's L2 state and injection, as torture.c chose them */
typedef struct TortureRound {
    unsigned kind;
    uint32_t event;             /* the back end's encoding, valid bit set */
    uint32_t err;
    bool inject;                /* false: "drop=N" loses it on purpose */
    uint64_t rip;
    uint64_t next_rip;          /* SVM: NextRIP of a soft event */
    uint32_t insn_len;          /* VMX: VM-entry instruction length */
    uint64_t cr2;
    uint64_t rsp, cr3, idt, gdt;
    uint16_t gdt_limit;
} TortureRound;

/* How L2's run ended, in the back end's terms and in torture.c's */
enum { TEXIT_HCALL, TEXIT_NPF, TEXIT_CROSS, TEXIT_OTHER };

typedef struct TortureExit {
    unsigned what;              /* TEXIT_* */
    uint64_t code;              /* the back end's exit code or reason */
    uint64_t rip;               /* L2's RIP at the exit */
    uint64_t gpa;               /* TEXIT_NPF: the guest-physical address */
    uint32_t eii, eie;          /* the delivery it cut short, if valid */
    uint32_t insn_len;          /* VMX: the exit's instruction length */
} TortureExit;

/*
 * SVM's EVENTINJ and EXITINTINFO (APM vol. 2, 15.20) and VMX's
 * interruption information (SDM Vol. 3C, 25.8.3) lay out the bits
 * torture.c reads the same way: vector 7:0, type 10:8 (the values
 * differ, which encode() handles), error code valid 11, valid 31.
 */
#define EVENT_VECTOR_MASK       0xffu
#define EVENT_ERROR_CODE        (1u << 11)
#define EVENT_VALID             (1u << 31)
_Static_assert(EVTINJ_VEC_MASK == EVENT_VECTOR_MASK &&
               INTR_INFO_VECTOR_MASK == EVENT_VECTOR_MASK &&
               EVTINJ_EV == EVENT_ERROR_CODE &&
               INTR_INFO_DELIVER_CODE == EVENT_ERROR_CODE &&
               EVTINJ_VALID == EVENT_VALID && INTR_INFO_VALID == EVENT_VALID,
               "the event formats torture.c reads without its back end");

/* The nested page-table entries torture.c asks a back end for */
enum { NPTE_TABLE, NPTE_2M, NPTE_4K };

typedef struct TortureHv {
    const char *name;           /* "svm", "vmx": the result's "hv" */
    /* Probe, print what was found; false (with a "# torture:" line) */
    bool (*probe)(void);
    /* The opcode bytes of L2's hypercall (VMMCALL or VMCALL) */
    uint8_t hcall[3];
    uint64_t hcall_exit;        /* its exit code, for diagnostics */
    uint32_t (*encode)(const EventKind *k);
    uint64_t (*npte)(uint64_t pa, int level);   /* 0: not mapped */
    /* enable, then build the VMCB or VMCS around nested root ncr3 */
    void (*cpu_start)(TortureCpu *c, uint64_t ncr3);
    void (*round_load)(TortureCpu *c, const TortureRound *r);
    void (*run)(TortureCpu *c, TortureExit *e);
    void (*reinject)(TortureCpu *c, const TortureExit *e,
                     const TortureRound *r);
    /* the nested page tables changed: flush before the next entry */
    void (*flush)(TortureCpu *c);
    /* where an injected soft event returns to */
    uint64_t (*soft_return)(const TortureRound *r);
} TortureHv;

extern const TortureHv torture_svm;     /* svm-torture.c */
extern const TortureHv torture_vmx;     /* vmx-torture.c */

/* torture.c, for the back ends */
bool torture_cross_events(void);
void torture_diag(TortureCpu *c, const char *kind, const char *what,
                  uint64_t got, uint64_t expected);

/* Distance between the L2 entry stubs, and between the soft-event slots */
#define T_L2_STUB_SIZE          16
#define T_L2_SLOT_SIZE          32

/*
 * L2 code (torture.c): each slot begins with a hypercall and UD2; a
 * soft-event slot has more hypercalls at T_L2_VMX_LEN(i) from its start,
 * where VMX's VM-entry instruction lengths land.
 */
#define T_L2_VMX_LEN(i)         (5 + 3 * (i))       /* i = 0..3 */
extern char t_l2_hw_rip[];          /* RIP of hardware events */
extern char t_l2_poison[];          /* next_rip of hardware events: unused */
extern char t_l2_soft_rip[];        /* slot per kind: RIP of soft events */
extern char t_l2_soft_next[];       /* slot per kind: their SVM NextRIP */
extern char t_l2_stubs[];           /* 256 stubs, T_L2_STUB_SIZE apart */
extern char t_l2_handler_hcall[];   /* where a handler exits without IRET */
extern uint64_t t_l2_hcall_sites[], t_l2_hcall_sites_end[];

/* L1's NMI and cross-IPI handlers: count and return */
extern char t_l1_nmi_entry[];
extern char t_l1_ipi_entry[];

/* Read by L2's handler: which vectors push an error code */
extern volatile uint8_t t_l2_errpushed[256];
/* L1's handlers count here, per vCPU (x2APIC ID): its own NMIs, */
extern volatile uint64_t t_l1_nmi_count[];
/* the NMIs from the previous vCPU, */
extern volatile uint64_t t_l1_cross_nmi_count[];
/* the fixed IPIs from the previous vCPU, */
extern volatile uint64_t t_l1_ipi_count[];
/* and whether the next NMI is one of those (torture.c CROSS_NMI_*) */
extern volatile uint64_t t_cross_nmi_state[];

#endif
