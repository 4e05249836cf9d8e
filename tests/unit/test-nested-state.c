/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * struct kvm_nested_state decoder, with blobs crafted from the uAPI
 * layouts (<linux/kvm.h>, asm/kvm.h): what svm_set_nested_state() and
 * vmx_set_nested_state() would refuse, and round trips through the test
 * codec's encoder.  Each case names the uAPI field it exercises.
 */

#include <stddef.h>
#include <string.h>

#include "nested-blob.h"
#include "nested-codec.h"
#include "nested-events.h"
#include "nested-state.h"

typedef struct BadBlob {
    const char *path;
    uint16_t flags;
    uint16_t format;
    uint32_t size;
    size_t len;
    uint32_t poke_at;       /* 0 = none */
    uint32_t poke_val;
    int code;
    const char *text;
} BadBlob;

#define SVM_FULL NESTED_STATE_SVM_MAX

static const BadBlob bad_blobs[] = {
    { "/kvm/nested-state/svm/truncated-header", 0x100, 1, 128, 127, 0, 0,
      NESTED_EVENT_ERROR_TRUNCATED, "kvm_nested_state.len=127" },
    { "/kvm/nested-state/svm/truncated-vmcb12", GM, 1, SVM_FULL, 4000, 0, 0,
      NESTED_EVENT_ERROR_TRUNCATED, "size=4224: only 4000 bytes" },
    { "/kvm/nested-state/svm/oversized-size", GM, 1, SVM_FULL + 1,
      SVM_FULL + 1, 0, 0, NESTED_EVENT_ERROR_OVERSIZED, "size=4225" },
    { "/kvm/nested-state/svm/oversized-buffer", 0x100, 1, 128, SVM_FULL + 8,
      0, 0, NESTED_EVENT_ERROR_OVERSIZED, "buffer 4232" },
    { "/kvm/nested-state/svm/size-below-header", 0x100, 1, 64, 128, 0, 0,
      NESTED_EVENT_ERROR_INVALID, "size=64" },
    { "/kvm/nested-state/svm/guest-mode-without-vmcb12", GM, 1, 128, 128, 0,
      0, NESTED_EVENT_ERROR_INVALID, "size=128: SVM state is 4224 bytes in" },
    { "/kvm/nested-state/svm/vmcb12-outside-guest-mode", 0x100, 1, SVM_FULL,
      SVM_FULL, 0, 0, NESTED_EVENT_ERROR_INVALID, "size=4224" },
    { "/kvm/nested-state/svm/evmcs-flag", KVM_STATE_NESTED_EVMCS, 1, 128, 128,
      0, 0, NESTED_EVENT_ERROR_INVALID, "flags=0x4: bits 0x4 not valid" },
    { "/kvm/nested-state/svm/run-pending-without-guest-mode",
      KVM_STATE_NESTED_RUN_PENDING, 1, 128, 128, 0, 0,
      NESTED_EVENT_ERROR_INVALID, "RUN_PENDING without GUEST_MODE" },
    { "/kvm/nested-state/svm/hdr-pad", 0x100, 1, 128, 128, 100, 1,
      NESTED_EVENT_ERROR_RESERVED, "hdr.svm.pad[84]=0x01" },
    { "/kvm/nested-state/svm/vmcb-pa-unaligned", GM, 1, SVM_FULL, SVM_FULL,
      8, 0x1234, NESTED_EVENT_ERROR_INVALID, "hdr.svm.vmcb_pa=0x1234" },
    { "/kvm/nested-state/format-garbage", 0, 7, 128, 128, 0, 0,
      NESTED_EVENT_ERROR_INVALID, "format=7" },
};

static void test_ns_bad(gconstpointer opaque)
{
    const BadBlob *bb = opaque;
    g_autofree uint8_t *b = ns_blob(bb->flags, bb->format, bb->size);
    g_autofree uint8_t *big = g_malloc0(bb->len + 1);
    NestedStateView v;
    g_autoptr(GError) err = NULL;

    if (bb->format == KVM_STATE_NESTED_FORMAT_SVM && (bb->flags & GM)) {
        put64(b + SVM_VMCB_PA, 0x12345000);
    }
    if (bb->poke_at) {
        put32(b + bb->poke_at, bb->poke_val);
    }
    memcpy(big, b, MIN(bb->len, (size_t)NESTED_STATE_VMX_MAX));
    g_assert_false(nested_state_decode(big, bb->len, &v, &err));
    if (!strstr(err->message, bb->text)) {
        g_test_message("got: %s", err->message);
    }
    g_assert_error(err, NESTED_EVENT_ERROR, bb->code);
    g_assert_nonnull(strstr(err->message, bb->text));
}

static void test_ns_vmx_bad(void)
{
    uint32_t size = NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
    g_autofree uint8_t *b = vmx_blob(GM, size);
    NestedStateView v;
    g_autoptr(GError) e1 = NULL;
    g_autoptr(GError) e2 = NULL;
    g_autoptr(GError) e3 = NULL;
    g_autoptr(GError) e4 = NULL;

    g_assert_true(nested_state_decode(b, size, &v, NULL));
    /* vmcs12.hdr.revision_id must be VMCS12_REVISION */
    put32(b + DATA, 0x12345678);
    g_assert_false(nested_state_decode(b, size, &v, &e1));
    g_assert_nonnull(strstr(e1->message, "vmcs12.revision_id=0x12345678"));
    put32(b + DATA, NESTED_VMCS12_REVISION);
    /* hdr.vmx.smm.flags: SMM_GUEST_MODE excludes GUEST_MODE */
    put16(b + VMX_HDR(smm.flags), KVM_STATE_NESTED_SMM_GUEST_MODE |
          KVM_STATE_NESTED_SMM_VMXON);
    g_assert_false(nested_state_decode(b, size, &v, &e2));
    g_assert_nonnull(strstr(e2->message, "hdr.vmx.smm.flags=0x3"));
    put16(b + VMX_HDR(smm.flags), 0);
    /* hdr.vmx.vmcs12_pa may not equal vmxon_pa */
    put64(b + VMX_HDR(vmcs12_pa), 0x100000);
    g_assert_false(nested_state_decode(b, size, &v, &e3));
    g_assert_nonnull(strstr(e3->message, "hdr.vmx.vmcs12_pa=0x100000"));
    put64(b + VMX_HDR(vmcs12_pa), 0x200000);
    /* hdr.vmx.flags: only PREEMPTION_TIMER_DEADLINE */
    put32(b + VMX_HDR(flags), 2);
    g_assert_false(nested_state_decode(b, size, &v, &e4));
    g_assert_nonnull(strstr(e4->message, "hdr.vmx.flags=0x2"));
}

/* data.vmx[0].shadow_vmcs12 needs the shadow bit in its revision. */
static void test_ns_vmx_shadow(void)
{
    g_autofree uint8_t *b = vmx_blob(GM, NESTED_STATE_VMX_MAX);
    g_autofree uint8_t *back = g_malloc0(NESTED_STATE_VMX_MAX);
    NestedStateView v;
    g_autoptr(GError) err = NULL;

    g_assert_false(nested_state_decode(b, NESTED_STATE_VMX_MAX, &v, &err));
    g_assert_nonnull(strstr(err->message, "shadow_vmcs12.revision_id"));
    put32(b + DATA + NESTED_STATE_VMCS_SIZE,
          NESTED_VMCS12_REVISION | NESTED_VMCS12_SHADOW_BIT);
    g_assert_true(nested_state_decode(b, NESTED_STATE_VMX_MAX, &v, NULL));
    g_assert_true(v.has_shadow_vmcs);
    g_assert_true(nested_state_encode(&v, back, NESTED_STATE_VMX_MAX,
                                      NULL));
    g_assert_cmpmem(back, NESTED_STATE_VMX_MAX, b, NESTED_STATE_VMX_MAX);
}

/* Random garbage never crashes, and what decodes re-encodes. */
static void test_ns_garbage(void)
{
    g_autofree uint8_t *b = g_malloc0(NESTED_STATE_VMX_MAX);
    g_autofree uint8_t *back = g_malloc0(NESTED_STATE_VMX_MAX);
    unsigned i, accepted = 0;

    for (i = 0; i < 3000; i++) {
        size_t len = g_test_rand_int_range(0, NESTED_STATE_VMX_MAX + 16);
        size_t j;
        NestedStateView v, v2;

        len = MIN(len, (size_t)NESTED_STATE_VMX_MAX);
        if (i % 3 == 1) {
            len = NESTED_STATE_SVM_MAX;
        } else if (i % 3 == 2) {
            len = i & 8 ? NESTED_STATE_VMX_MAX :
                  NESTED_STATE_HDR_SIZE + NESTED_STATE_VMCS_SIZE;
        }
        for (j = 0; j < len; j++) {
            b[j] = g_test_rand_int_range(0, 4) ? 0 : g_test_rand_int();
        }
        /* Bias towards plausible headers so the deeper checks run. */
        if (i % 3 == 1) {
            memset(b, 0, NESTED_STATE_HDR_SIZE);
            put16(b, GM | (i & 4 ? KVM_STATE_NESTED_RUN_PENDING : 0));
            put16(b + 2, KVM_STATE_NESTED_FORMAT_SVM);
            put32(b + 4, (uint32_t)len);
        } else if (i % 3 == 2) {
            memset(b, 0, NESTED_STATE_HDR_SIZE);
            put16(b, GM);
            put16(b + 2, KVM_STATE_NESTED_FORMAT_VMX);
            put32(b + 4, (uint32_t)len);
            put64(b + VMX_HDR(vmcs12_pa), 0x200000);
            put32(b + DATA, NESTED_VMCS12_REVISION);
            put32(b + DATA + NESTED_STATE_VMCS_SIZE,
                  NESTED_VMCS12_REVISION | NESTED_VMCS12_SHADOW_BIT);
        }
        if (!nested_state_decode(b, len, &v, NULL)) {
            continue;
        }
        accepted++;
        g_assert_true(nested_state_encode(&v, back, len, NULL));
        g_assert_true(nested_state_decode(back, v.size, &v2, NULL));
        g_assert_cmpmem(&v, sizeof(v), &v2, sizeof(v2));
        g_assert_cmphex(get32(back + 4), ==, v.size);
    }
    g_test_message("accepted %u of 3000", accepted);
    g_assert_cmpuint(accepted, >, 1000);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < G_N_ELEMENTS(bad_blobs); i++) {
        g_test_add_data_func(bad_blobs[i].path, &bad_blobs[i], test_ns_bad);
    }
    g_test_add_func("/kvm/nested-state/vmx/header-checks", test_ns_vmx_bad);
    g_test_add_func("/kvm/nested-state/vmx/shadow-vmcs12",
                    test_ns_vmx_shadow);
    g_test_add_func("/kvm/nested-state/garbage", test_ns_garbage);
    return g_test_run();
}
