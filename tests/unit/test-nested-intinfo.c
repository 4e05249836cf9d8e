/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * SVM EVENTINJ/EXITINTINFO and VMX interruption-information codecs:
 * exhaustive round trips and golden cases from the manuals.
 */

#include <string.h>

#include "nested-event-info.h"
#include "nested-intinfo.h"

static const NestedIntInfoKind all_kinds[] = {
    NESTED_INTINFO_SVM_EVENTINJ,
    NESTED_INTINFO_SVM_EXITINTINFO,
    NESTED_INTINFO_VMX_ENTRY,
    NESTED_INTINFO_VMX_IDT_VECTORING,
    NESTED_INTINFO_VMX_EXIT,
};

/*
 * The test's own reading of the manuals, kept apart from the code under
 * test: bit n set = type n allowed.
 */
static unsigned expected_types(NestedIntInfoKind kind)
{
    switch (kind) {
    case NESTED_INTINFO_SVM_EVENTINJ:      /* APM 15.20 */
    case NESTED_INTINFO_SVM_EXITINTINFO:   /* APM 15.7.2 */
        return 0x1d;                       /* 0, 2, 3, 4 */
    case NESTED_INTINFO_VMX_ENTRY:         /* SDM 24.8.3 */
        return 0xfd;                       /* all but 1 */
    case NESTED_INTINFO_VMX_IDT_VECTORING: /* SDM 24.9.3 */
        return 0x7d;                       /* 0, 2-6 */
    case NESTED_INTINFO_VMX_EXIT:          /* SDM 24.9.2 */
        return 0x6d;                       /* 0, 2, 3, 5, 6 */
    }
    g_assert_not_reached();
}

/* The name of the word that the codec's errors start with. */
static const char *expected_name(NestedIntInfoKind kind)
{
    switch (kind) {
    case NESTED_INTINFO_SVM_EVENTINJ:
        return "svm.event_inj";
    case NESTED_INTINFO_SVM_EXITINTINFO:
        return "svm.exit_int_info";
    case NESTED_INTINFO_VMX_ENTRY:
        return "vmx.vm_entry_intr_info";
    case NESTED_INTINFO_VMX_IDT_VECTORING:
        return "vmx.idt_vectoring_info";
    case NESTED_INTINFO_VMX_EXIT:
        return "vmx.vm_exit_intr_info";
    }
    g_assert_not_reached();
}

static bool expected_bit12(NestedIntInfoKind kind)
{
    return kind == NESTED_INTINFO_VMX_EXIT ||
           kind == NESTED_INTINFO_VMX_IDT_VECTORING;
}

static uint32_t expected_reserved(NestedIntInfoKind kind)
{
    uint32_t bits = 0;
    int b;

    for (b = expected_bit12(kind) ? 13 : 12; b <= 30; b++) {
        bits |= 1u << b;
    }
    return bits;
}

static void assert_info_eq(const NestedIntInfo *a, const NestedIntInfo *b)
{
    g_assert_cmpint(a->valid, ==, b->valid);
    g_assert_cmpuint(a->type, ==, b->type);
    g_assert_cmpuint(a->vector, ==, b->vector);
    g_assert_cmpint(a->error_code_valid, ==, b->error_code_valid);
    g_assert_cmpint(a->nmi_unblocked, ==, b->nmi_unblocked);
    g_assert_cmpuint(a->inactive, ==, b->inactive);
}

/* decode(encode(x)) == x over every type, vector and flag. */
static void test_exhaustive_info(void)
{
    size_t k;

    for (k = 0; k < G_N_ELEMENTS(all_kinds); k++) {
        NestedIntInfoKind kind = all_kinds[k];
        unsigned ok_types = expected_types(kind);
        unsigned type, vector, flags;
        unsigned encoded = 0;

        for (type = 0; type < 8; type++) {
            for (vector = 0; vector < 256; vector++) {
                for (flags = 0; flags < 4; flags++) {
                    NestedIntInfo in = {
                        .valid = true, .type = type, .vector = vector,
                        .error_code_valid = flags & 1,
                        .nmi_unblocked = flags & 2,
                    };
                    NestedIntInfo back;
                    g_autoptr(GError) err = NULL;
                    uint32_t raw = 0;
                    bool expect = (ok_types & (1u << type)) &&
                                  (!(flags & 2) || expected_bit12(kind));
                    bool got = nested_intinfo_encode(kind, &in, &raw, &err);

                    g_assert_cmpint(got, ==, expect);
                    if (!got) {
                        g_assert_nonnull(strstr(err->message,
                                                expected_name(kind)));
                        continue;
                    }
                    encoded++;
                    g_assert_true(raw & NESTED_INTINFO_VALID);
                    g_assert_true(nested_intinfo_decode(kind, raw, &back,
                                                        NULL));
                    assert_info_eq(&in, &back);
                }
            }
        }
        g_assert_cmpuint(encoded, >, 0);
    }
}

/* encode(decode(raw)) == raw for every valid raw word; others refused. */
static void test_exhaustive_raw(void)
{
    size_t k;

    for (k = 0; k < G_N_ELEMENTS(all_kinds); k++) {
        NestedIntInfoKind kind = all_kinds[k];
        uint32_t reserved = expected_reserved(kind);
        unsigned ok_types = expected_types(kind);
        uint32_t base;
        int rbit;

        for (base = 0; base < 0x2000; base++) {
            for (rbit = -1; rbit <= 31; rbit++) {
                uint32_t extra = rbit < 0 ? 0 : 1u << rbit;
                uint32_t raw, back;
                NestedIntInfo info;
                g_autoptr(GError) err = NULL;
                unsigned type;
                bool expect;

                if (rbit >= 0 && !(reserved & extra)) {
                    continue;
                }
                raw = base | extra | NESTED_INTINFO_VALID;
                type = (raw >> 8) & 7;
                expect = !(raw & reserved) && (ok_types & (1u << type)) &&
                         (!(raw & (1u << 12)) || expected_bit12(kind));
                g_assert_cmpint(nested_intinfo_decode(kind, raw, &info, &err),
                                ==, expect);
                if (!expect) {
                    g_assert_nonnull(err);
                    g_assert_true(g_str_has_prefix(err->message,
                                                   expected_name(kind)));
                    continue;
                }
                g_assert_true(nested_intinfo_encode(kind, &info, &back, NULL));
                g_assert_cmphex(back, ==, raw);

                /* The same word with V clear is kept verbatim. */
                raw &= ~NESTED_INTINFO_VALID;
                g_assert_true(nested_intinfo_decode(kind, raw, &info, NULL));
                g_assert_false(info.valid);
                g_assert_true(nested_intinfo_encode(kind, &info, &back, NULL));
                g_assert_cmphex(back, ==, raw);
            }
        }
    }
}

static void assert_event_eq(const NestedEvent *a, const NestedEvent *b)
{
    g_assert_cmpint(a->valid, ==, b->valid);
    g_assert_cmpuint(a->type, ==, b->type);
    g_assert_cmpuint(a->vector, ==, b->vector);
    g_assert_cmpuint(a->origin, ==, b->origin);
    g_assert_cmpint(a->has_error_code, ==, b->has_error_code);
    g_assert_cmphex(a->error_code, ==, b->error_code);
    g_assert_cmpuint(a->insn_len, ==, b->insn_len);
}

static const uint32_t ec_samples[] = { 0, 1, 0x1234, 0xffffffff };

static bool svm_expect_encodable(unsigned type, unsigned vector)
{
    bool bp_or_of = vector == 3 || vector == 4;

    switch (type) {
    case 0:
    case 2:
    case 4:
        return true;
    case 3:
        return !bp_or_of;
    case 6:
        return bp_or_of;
    default:
        return false;
    }
}

/* Model event -> EVENTINJ -> model event, every type/vector/EC. */
static void test_svm_event_roundtrip(void)
{
    unsigned type, vector, ec, s;

    for (type = 0; type < 8; type++) {
        for (vector = 0; vector < 256; vector++) {
            for (ec = 0; ec < 2; ec++) {
                for (s = 0; s < G_N_ELEMENTS(ec_samples); s++) {
                    NestedEvent in = {
                        .valid = true, .type = type, .origin = NESTED_ORIGIN_L1,
                        .vector = type == 2 ? 2 : vector,
                        .has_error_code = ec,
                        .error_code = ec ? ec_samples[s] : 0,
                    };
                    NestedEvent back;
                    uint32_t raw, err;
                    bool expect = svm_expect_encodable(type, vector);

                    g_assert_cmpint(nested_event_to_svm(&in, &raw, &err, NULL),
                                    ==, expect);
                    if (!expect) {
                        continue;
                    }
                    g_assert_true(nested_event_from_svm(
                        NESTED_INTINFO_SVM_EVENTINJ, raw, err, &back, NULL));
                    assert_event_eq(&in, &back);
                }
            }
        }
    }
}

static void test_vmx_event_roundtrip(void)
{
    unsigned type, vector, ec, len;

    for (type = 0; type < 8; type++) {
        for (vector = 0; vector < 256; vector++) {
            for (ec = 0; ec < 2; ec++) {
                for (len = 0; len <= 15; len += 5) {
                    bool soft = type >= 4 && type <= 6;
                    NestedEvent in = {
                        .valid = true, .type = type, .vector = vector,
                        .origin = NESTED_ORIGIN_L1, .has_error_code = ec,
                        .error_code = ec ? 0xdead0000 | vector : 0,
                        .insn_len = soft ? len : 0,
                    };
                    NestedEvent back;
                    uint32_t raw, err, ilen;
                    bool expect = type != 1;

                    g_assert_cmpint(nested_event_to_vmx(&in, &raw, &err,
                                                        &ilen, NULL),
                                    ==, expect);
                    if (!expect) {
                        continue;
                    }
                    g_assert_cmpuint(ilen, ==, in.insn_len);
                    g_assert_true(nested_event_from_vmx(
                        NESTED_INTINFO_VMX_ENTRY, raw, err, ilen, &back,
                        NULL));
                    assert_event_eq(&in, &back);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Golden cases                                                       */
/* ------------------------------------------------------------------ */

typedef struct Golden {
    const char *path;
    NestedIntInfoKind kind;
    uint32_t raw;
    bool ok;
    uint8_t type;           /* raw type when ok */
    uint8_t vector;
    bool ec;
    bool nmi_unblocked;
    const char *error;      /* substring expected when !ok */
} Golden;

static const Golden goldens[] = {
    { "/svm/eventinj/apm-15.20/nmi", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000202, true, 2, 2, false, false, NULL },
    { "/svm/eventinj/apm-15.20/intr-vector-0x30", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000030, true, 0, 0x30, false, false, NULL },
    { "/svm/eventinj/apm-15.20/gp-with-ev", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000b0d, true, 3, 13, true, false, NULL },
    { "/svm/eventinj/apm-15.20/int-0x80", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000480, true, 4, 0x80, false, false, NULL },
    { "/svm/eventinj/apm-15.20/reserved-type-1", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000100, false, 0, 0, false, false, "type 1" },
    { "/svm/eventinj/apm-15.20/reserved-type-5", NESTED_INTINFO_SVM_EVENTINJ,
      0x80000501, false, 0, 0, false, false, "type 5" },
    { "/svm/eventinj/apm-15.20/reserved-bit-12", NESTED_INTINFO_SVM_EVENTINJ,
      0x80001020, false, 0, 0, false, false, "reserved bits 0x00001000" },
    { "/svm/eventinj/apm-15.20/reserved-bit-30", NESTED_INTINFO_SVM_EVENTINJ,
      0xc0000020, false, 0, 0, false, false, "reserved bits 0x40000000" },
    { "/svm/exitintinfo/apm-15.7.2/pf-during-delivery",
      NESTED_INTINFO_SVM_EXITINTINFO, 0x80000b0e, true, 3, 14, true, false,
      NULL },
    { "/vmx/entry/sdm-24.8.3/ext-intr-0x20", NESTED_INTINFO_VMX_ENTRY,
      0x80000020, true, 0, 0x20, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/nmi", NESTED_INTINFO_VMX_ENTRY,
      0x80000202, true, 2, 2, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/pf-deliver-error-code", NESTED_INTINFO_VMX_ENTRY,
      0x80000b0e, true, 3, 14, true, false, NULL },
    { "/vmx/entry/sdm-24.8.3/int-0x80", NESTED_INTINFO_VMX_ENTRY,
      0x80000480, true, 4, 0x80, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/icebp", NESTED_INTINFO_VMX_ENTRY,
      0x80000501, true, 5, 1, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/int3", NESTED_INTINFO_VMX_ENTRY,
      0x80000603, true, 6, 3, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/other-mtf", NESTED_INTINFO_VMX_ENTRY,
      0x80000700, true, 7, 0, false, false, NULL },
    { "/vmx/entry/sdm-24.8.3/reserved-type-1", NESTED_INTINFO_VMX_ENTRY,
      0x80000120, false, 0, 0, false, false, "type 1" },
    { "/vmx/entry/sdm-24.8.3/bit-12-reserved", NESTED_INTINFO_VMX_ENTRY,
      0x80001202, false, 0, 0, false, false, "reserved bits 0x00001000" },
    { "/vmx/exit/sdm-24.9.2/nmi-unblocking-due-to-iret",
      NESTED_INTINFO_VMX_EXIT, 0x80001202, true, 2, 2, false, true, NULL },
    { "/vmx/exit/sdm-24.9.2/gp-with-error-code", NESTED_INTINFO_VMX_EXIT,
      0x80000b0d, true, 3, 13, true, false, NULL },
    { "/vmx/exit/sdm-24.9.2/no-soft-intr", NESTED_INTINFO_VMX_EXIT,
      0x80000480, false, 0, 0, false, false, "type 4" },
    { "/vmx/exit/sdm-24.9.2/reserved-bit-13", NESTED_INTINFO_VMX_EXIT,
      0x80002202, false, 0, 0, false, false, "reserved bits 0x00002000" },
    { "/vmx/idt/sdm-24.9.3/soft-intr", NESTED_INTINFO_VMX_IDT_VECTORING,
      0x80000421, true, 4, 0x21, false, false, NULL },
    { "/vmx/idt/sdm-24.9.3/no-type-7", NESTED_INTINFO_VMX_IDT_VECTORING,
      0x80000700, false, 0, 0, false, false, "type 7" },
};

static void test_golden(gconstpointer opaque)
{
    const Golden *g = opaque;
    g_autoptr(GError) err = NULL;
    NestedIntInfo info;
    uint32_t back;

    g_assert_cmpint(nested_intinfo_decode(g->kind, g->raw, &info, &err), ==,
                    g->ok);
    if (!g->ok) {
        int code = (g->raw & expected_reserved(g->kind)) ?
                   NESTED_EVENT_ERROR_RESERVED : NESTED_EVENT_ERROR_INVALID;

        g_assert_error(err, NESTED_EVENT_ERROR, code);
        g_assert_nonnull(strstr(err->message, g->error));
        g_assert_true(g_str_has_prefix(err->message,
                                       expected_name(g->kind)));
        return;
    }
    g_assert_true(info.valid);
    g_assert_cmpuint(info.type, ==, g->type);
    g_assert_cmpuint(info.vector, ==, g->vector);
    g_assert_cmpint(info.error_code_valid, ==, g->ec);
    g_assert_cmpint(info.nmi_unblocked, ==, g->nmi_unblocked);
    g_assert_true(nested_intinfo_encode(g->kind, &info, &back, NULL));
    g_assert_cmphex(back, ==, g->raw);
}

/* APM 15.20: type 3 with vector 3/4 is how INT3/INTO go into EVENTINJ. */
static void test_svm_int3_is_soft(void)
{
    NestedEvent ev;
    g_autoptr(GError) err = NULL;
    uint32_t raw, ec;

    g_assert_true(nested_event_from_svm(NESTED_INTINFO_SVM_EVENTINJ,
                                        0x80000303, 0, &ev, NULL));
    g_assert_cmpuint(ev.type, ==, NESTED_EVENT_SOFT_EXCEPTION);
    g_assert_cmpuint(ev.origin, ==, NESTED_ORIGIN_L1);
    ev.type = NESTED_EVENT_HW_EXCEPTION;
    g_assert_false(nested_event_to_svm(&ev, &raw, &ec, &err));
    g_assert_error(err, NESTED_EVENT_ERROR, NESTED_EVENT_ERROR_UNREPRESENTABLE);
    g_assert_nonnull(strstr(err->message, "vector=3"));
}

/* SVM ignores an NMI's vector; KVM writes 0 there.  The model says 2. */
static void test_svm_nmi_vector_ignored(void)
{
    NestedEvent ev;
    uint32_t raw, ec;

    g_assert_true(nested_event_from_svm(NESTED_INTINFO_SVM_EXITINTINFO,
                                        0x80000200, 0, &ev, NULL));
    g_assert_cmpuint(ev.type, ==, NESTED_EVENT_NMI);
    g_assert_cmpuint(ev.vector, ==, 2);
    g_assert_cmpuint(ev.origin, ==, NESTED_ORIGIN_L0);
    g_assert_true(nested_event_to_svm(&ev, &raw, &ec, NULL));
    g_assert_cmphex(raw, ==, 0x80000202);
}

/* KVM clears only V after delivery; the stale rest must survive. */
static void test_svm_stale_eventinj(void)
{
    NestedIntInfo info;
    uint32_t back;

    g_assert_true(nested_intinfo_decode(NESTED_INTINFO_SVM_EVENTINJ,
                                        0x00000b0e, &info, NULL));
    g_assert_false(info.valid);
    g_assert_cmphex(info.inactive, ==, 0x00000b0e);
    g_assert_true(nested_intinfo_encode(NESTED_INTINFO_SVM_EVENTINJ, &info,
                                        &back, NULL));
    g_assert_cmphex(back, ==, 0x00000b0e);
    info.inactive |= NESTED_INTINFO_VALID;
    g_assert_false(nested_intinfo_encode(NESTED_INTINFO_SVM_EVENTINJ, &info,
                                         &back, NULL));
}

/* SDM 26.2.1.3: VM-entry instruction length is at most 15. */
static void test_vmx_insn_len_limit(void)
{
    NestedEvent ev;
    g_autoptr(GError) err = NULL;

    g_assert_true(nested_event_from_vmx(NESTED_INTINFO_VMX_ENTRY, 0x80000480,
                                        0, 15, &ev, NULL));
    g_assert_cmpuint(ev.insn_len, ==, 15);
    g_assert_false(nested_event_from_vmx(NESTED_INTINFO_VMX_ENTRY, 0x80000480,
                                         0, 16, &ev, &err));
    g_assert_nonnull(strstr(err->message, "instruction_len=16"));
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/intinfo/exhaustive/info-roundtrip",
                    test_exhaustive_info);
    g_test_add_func("/intinfo/exhaustive/raw-roundtrip", test_exhaustive_raw);
    g_test_add_func("/svm/event/exhaustive-roundtrip",
                    test_svm_event_roundtrip);
    g_test_add_func("/vmx/event/exhaustive-roundtrip",
                    test_vmx_event_roundtrip);
    for (i = 0; i < G_N_ELEMENTS(goldens); i++) {
        g_test_add_data_func(goldens[i].path, &goldens[i], test_golden);
    }
    g_test_add_func("/svm/eventinj/apm-15.20/int3-is-soft-exception",
                    test_svm_int3_is_soft);
    g_test_add_func("/svm/exitintinfo/apm-15.7.2/nmi-vector-ignored",
                    test_svm_nmi_vector_ignored);
    g_test_add_func("/svm/eventinj/apm-15.20/stale-bits-after-delivery",
                    test_svm_stale_eventinj);
    g_test_add_func("/vmx/entry/sdm-26.2.1.3/instruction-length-limit",
                    test_vmx_insn_len_limit);
    return g_test_run();
}
