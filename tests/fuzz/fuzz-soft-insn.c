/*
 * libFuzzer target for the software-interrupt instruction decoder
 *
 * Besides memory safety (ASan/UBSan), checks properties that the callers
 * rely on when they compute next RIP = old RIP + length.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soft-insn.h"

#define FUZZ_CHECK(cond)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: mode %d: invariant failed: %s\n",     \
                    __FILE__, __LINE__, (int)mode, #cond);                \
            abort();                                                      \
        }                                                                 \
    } while (0)

static bool is_known_error(int ret)
{
    switch (ret) {
    case SOFT_INSN_ERR_TRUNCATED:
    case SOFT_INSN_ERR_NOT_SOFT:
    case SOFT_INSN_ERR_TOO_LONG:
    case SOFT_INSN_ERR_INTO_64:
    case SOFT_INSN_ERR_INC_DEC:
    case SOFT_INSN_ERR_LOCK:
        return true;
    default:
        return false;
    }
}

static void check_success(const uint8_t *data, size_t size,
                          SoftInsnMode mode, const SoftInsn *insn)
{
    SoftInsn again;
    uint8_t opc;
    size_t i;

    FUZZ_CHECK(insn->length >= 1);
    FUZZ_CHECK(insn->length <= SOFT_INSN_MAX_LENGTH);
    FUZZ_CHECK(insn->length <= size);
    FUZZ_CHECK(insn->prefix_count < insn->length);
    FUZZ_CHECK(soft_insn_matches(insn, insn->vector, insn->kind));

    opc = data[insn->prefix_count];
    switch (insn->kind) {
    case SOFT_INSN_KIND_INT_N:
        FUZZ_CHECK(opc == 0xcd);
        FUZZ_CHECK(insn->length == insn->prefix_count + 2);
        FUZZ_CHECK(insn->vector == data[insn->prefix_count + 1]);
        break;
    case SOFT_INSN_KIND_INT3:
        FUZZ_CHECK(opc == 0xcc);
        FUZZ_CHECK(insn->vector == 3);
        break;
    case SOFT_INSN_KIND_INTO:
        FUZZ_CHECK(opc == 0xce);
        FUZZ_CHECK(insn->vector == 4);
        FUZZ_CHECK(mode != SOFT_INSN_MODE_64);
        break;
    case SOFT_INSN_KIND_INT1:
        FUZZ_CHECK(opc == 0xf1);
        FUZZ_CHECK(insn->vector == 1);
        break;
    default:
        FUZZ_CHECK(!"unexpected kind");
    }
    if (insn->kind != SOFT_INSN_KIND_INT_N) {
        FUZZ_CHECK(insn->length == insn->prefix_count + 1);
    }

    /* REX exists only in 64-bit mode; LOCK never decodes successfully. */
    for (i = 0; i < insn->prefix_count; i++) {
        FUZZ_CHECK(data[i] != 0xf0);
        if (mode != SOFT_INSN_MODE_64) {
            FUZZ_CHECK((data[i] & 0xf0) != 0x40);
        }
    }
    if (insn->has_rex) {
        FUZZ_CHECK(mode == SOFT_INSN_MODE_64);
        FUZZ_CHECK(insn->prefix_count > 0);
        FUZZ_CHECK((data[insn->prefix_count - 1] & 0xf0) == 0x40);
    }

    /* The reported length is exactly what the decoder needed. */
    FUZZ_CHECK(soft_insn_decode(data, insn->length, mode, &again) ==
               SOFT_INSN_OK);
    FUZZ_CHECK(again.kind == insn->kind && again.vector == insn->vector &&
               again.length == insn->length &&
               again.prefix_count == insn->prefix_count &&
               again.has_rex == insn->has_rex);
    FUZZ_CHECK(soft_insn_decode(data, insn->length - 1, mode, &again) ==
               SOFT_INSN_ERR_TRUNCATED);
}

static void check_mode(const uint8_t *data, size_t size, SoftInsnMode mode)
{
    SoftInsn insn;
    SoftInsn shorter;
    int ret;
    int ret_shorter;

    memset(&insn, 0xa5, sizeof(insn));
    ret = soft_insn_decode(data, size, mode, &insn);
    if (ret == SOFT_INSN_OK) {
        check_success(data, size, mode, &insn);
        return;
    }

    FUZZ_CHECK(is_known_error(ret));
    FUZZ_CHECK(insn.kind == SOFT_INSN_KIND_NONE);
    FUZZ_CHECK(insn.length == 0);
    FUZZ_CHECK(strcmp(soft_insn_strerror(ret), "unknown error") != 0);

    /*
     * Only TRUNCATED may depend on where the input ends: dropping the
     * last byte from an input with any other verdict must not turn it
     * into a success.
     */
    if (size > 0) {
        ret_shorter = soft_insn_decode(data, size - 1, mode, &shorter);
        FUZZ_CHECK(ret_shorter != SOFT_INSN_OK);
        if (ret != SOFT_INSN_ERR_TRUNCATED) {
            FUZZ_CHECK(ret_shorter == ret ||
                       ret_shorter == SOFT_INSN_ERR_TRUNCATED);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const SoftInsnMode modes[] = {
        SOFT_INSN_MODE_16, SOFT_INSN_MODE_32, SOFT_INSN_MODE_64,
    };
    size_t m;

    for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        check_mode(data, size, modes[m]);
    }
    return 0;
}
