/*
 * Unit tests for the software-interrupt instruction decoder
 *
 * Test paths name the Intel SDM section that defines the behaviour:
 *   sdm-vol2-int     vol. 2, "INT n/INTO/INT3/INT1-Call to Interrupt
 *                    Procedure"
 *   sdm-vol2-lock    vol. 2, "LOCK-Assert LOCK# Signal Prefix"
 *   sdm-vol2-2.1.1   vol. 2, §2.1.1 "Instruction Prefixes"
 *   sdm-vol2-2.2.1   vol. 2, §2.2.1 "REX Prefixes"
 *   sdm-vol2-2.3.11  vol. 2, §2.3.11 (maximum instruction length 15)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <glib.h>
#include <string.h>

#include "soft-insn.h"

static const SoftInsnMode all_modes[] = {
    SOFT_INSN_MODE_16, SOFT_INSN_MODE_32, SOFT_INSN_MODE_64,
};

static const uint8_t legacy_prefixes[] = {
    0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67,
};

/* Legacy prefixes that are harmless on INT n/INT3/INTO/INT1. */
static const uint8_t benign_prefixes[] = {
    0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67,
};

typedef struct OpcodeCase {
    uint8_t bytes[2];
    size_t len;
    SoftInsnKind kind;
    uint8_t vector;
} OpcodeCase;

static const OpcodeCase opcode_cases[] = {
    { { 0xcc }, 1, SOFT_INSN_KIND_INT3, 3 },
    { { 0xcd, 0x80 }, 2, SOFT_INSN_KIND_INT_N, 0x80 },
    { { 0xce }, 1, SOFT_INSN_KIND_INTO, 4 },
    { { 0xf1 }, 1, SOFT_INSN_KIND_INT1, 1 },
};

/*
 * Decode from a heap copy of exactly @len bytes, so that an over-read is
 * caught by ASan or valgrind when the tests run under them.
 */
static int decode_exact(const uint8_t *bytes, size_t len, SoftInsnMode mode,
                        SoftInsn *out)
{
    uint8_t *copy = len ? g_malloc(len) : NULL;
    int ret;

    if (len) {
        memcpy(copy, bytes, len);
    }
    ret = soft_insn_decode(copy, len, mode, out);

    g_free(copy);
    return ret;
}

static void assert_ok(const uint8_t *bytes, size_t len, SoftInsnMode mode,
                      SoftInsnKind kind, uint8_t vector, size_t length,
                      size_t prefixes, bool has_rex)
{
    SoftInsn insn;
    int ret = decode_exact(bytes, len, mode, &insn);

    g_assert_cmpstr(soft_insn_strerror(ret), ==,
                    soft_insn_strerror(SOFT_INSN_OK));
    g_assert_cmpint(insn.kind, ==, kind);
    g_assert_cmpuint(insn.vector, ==, vector);
    g_assert_cmpuint(insn.length, ==, length);
    g_assert_cmpuint(insn.prefix_count, ==, prefixes);
    g_assert_cmpint(insn.has_rex, ==, has_rex);
    g_assert_true(soft_insn_matches(&insn, vector, kind));
}

static void assert_err(const uint8_t *bytes, size_t len, SoftInsnMode mode,
                       int err)
{
    SoftInsn insn;
    int ret = decode_exact(bytes, len, mode, &insn);

    g_assert_cmpstr(soft_insn_strerror(ret), ==, soft_insn_strerror(err));
    g_assert_cmpint(ret, ==, err);
    g_assert_cmpint(insn.kind, ==, SOFT_INSN_KIND_NONE);
    g_assert_cmpuint(insn.length, ==, 0);
}

/*
 * Reference classifier, written as "measure the prefix run, then look at
 * what follows" rather than the decoder's byte-by-byte loop, so that the
 * two are unlikely to share a mistake.
 */
static bool ref_is_prefix(uint8_t b, SoftInsnMode mode)
{
    if (memchr(legacy_prefixes, b, sizeof(legacy_prefixes))) {
        return true;
    }
    return mode == SOFT_INSN_MODE_64 && b >= 0x40 && b <= 0x4f;
}

static int ref_classify(const uint8_t *b, size_t len, SoftInsnMode mode,
                        SoftInsn *ref)
{
    size_t run = 0;
    size_t need;
    bool lock;
    uint8_t opc;

    memset(ref, 0, sizeof(*ref));
    while (run < len && ref_is_prefix(b[run], mode)) {
        run++;
    }
    if (run >= 15) {
        return SOFT_INSN_ERR_TOO_LONG;
    }
    if (run == len) {
        return SOFT_INSN_ERR_TRUNCATED;
    }
    opc = b[run];
    if (opc != 0xcc && opc != 0xcd && opc != 0xce && opc != 0xf1) {
        return (opc >> 4) == 4 ? SOFT_INSN_ERR_INC_DEC
                               : SOFT_INSN_ERR_NOT_SOFT;
    }
    need = run + (opc == 0xcd ? 2 : 1);
    if (need > 15) {
        return SOFT_INSN_ERR_TOO_LONG;
    }
    if (need > len) {
        return SOFT_INSN_ERR_TRUNCATED;
    }
    if (opc == 0xce && mode == SOFT_INSN_MODE_64) {
        return SOFT_INSN_ERR_INTO_64;
    }
    lock = memchr(b, 0xf0, run) != NULL;
    if (lock) {
        return SOFT_INSN_ERR_LOCK;
    }
    ref->kind = opc == 0xcc ? SOFT_INSN_KIND_INT3 :
                opc == 0xcd ? SOFT_INSN_KIND_INT_N :
                opc == 0xce ? SOFT_INSN_KIND_INTO : SOFT_INSN_KIND_INT1;
    ref->vector = opc == 0xcc ? 3 : opc == 0xcd ? b[run + 1] :
                  opc == 0xce ? 4 : 1;
    ref->length = need;
    ref->prefix_count = run;
    ref->has_rex = mode == SOFT_INSN_MODE_64 && run > 0 &&
                   (b[run - 1] >> 4) == 4;
    return SOFT_INSN_OK;
}

static void assert_agrees_with_ref(const uint8_t *b, size_t len,
                                   SoftInsnMode mode)
{
    SoftInsn got, want;
    int ret = soft_insn_decode(b, len, mode, &got);
    int ref = ref_classify(b, len, mode, &want);

    if (ret != ref || got.kind != want.kind || got.vector != want.vector ||
        got.length != want.length || got.prefix_count != want.prefix_count ||
        got.has_rex != want.has_rex) {
        g_autofree char *hex = NULL;
        GString *s = g_string_new(NULL);
        size_t i;

        for (i = 0; i < len; i++) {
            g_string_append_printf(s, "%02x ", b[i]);
        }
        hex = g_string_free(s, FALSE);
        g_test_message("mode %d bytes [%s]: decoder %d (%s) ref %d (%s)",
                       mode, hex, ret, soft_insn_strerror(ret), ref,
                       soft_insn_strerror(ref));
        g_assert_cmpint(ret, ==, ref);
        g_assert_cmpint(got.kind, ==, want.kind);
        g_assert_cmpuint(got.vector, ==, want.vector);
        g_assert_cmpuint(got.length, ==, want.length);
        g_assert_cmpuint(got.prefix_count, ==, want.prefix_count);
        g_assert_cmpint(got.has_rex, ==, want.has_rex);
        g_assert_not_reached();
    }
}

static void test_int3(void)
{
    static const uint8_t b[] = { 0xcc };
    size_t m;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        assert_ok(b, sizeof(b), all_modes[m], SOFT_INSN_KIND_INT3, 3, 1, 0,
                  false);
    }
}

static void test_int_n(void)
{
    size_t m;
    unsigned v;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        for (v = 0; v < 256; v++) {
            uint8_t b[] = { 0xcd, v };

            assert_ok(b, sizeof(b), all_modes[m], SOFT_INSN_KIND_INT_N, v, 2,
                      0, false);
        }
    }
}

/*
 * CD 03 is a software interrupt (no #BP semantics, IOPL/VME-checked in
 * virtual-8086 mode); CC is the breakpoint exception.  Same vector, not
 * interchangeable.
 */
static void test_int_n_3_is_not_int3(void)
{
    static const uint8_t cd03[] = { 0xcd, 0x03 };
    static const uint8_t cc[] = { 0xcc };
    SoftInsn insn;
    size_t m;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        g_assert_cmpint(soft_insn_decode(cd03, 2, all_modes[m], &insn), ==,
                        SOFT_INSN_OK);
        g_assert_cmpint(insn.kind, ==, SOFT_INSN_KIND_INT_N);
        g_assert_cmpuint(insn.length, ==, 2);
        g_assert_true(soft_insn_matches(&insn, 3, SOFT_INSN_KIND_INT_N));
        g_assert_false(soft_insn_matches(&insn, 3, SOFT_INSN_KIND_INT3));

        g_assert_cmpint(soft_insn_decode(cc, 1, all_modes[m], &insn), ==,
                        SOFT_INSN_OK);
        g_assert_cmpuint(insn.length, ==, 1);
        g_assert_true(soft_insn_matches(&insn, 3, SOFT_INSN_KIND_INT3));
        g_assert_false(soft_insn_matches(&insn, 3, SOFT_INSN_KIND_INT_N));
        g_assert_false(soft_insn_matches(&insn, 4, SOFT_INSN_KIND_INT3));
    }
}

static void test_into(void)
{
    static const uint8_t b[] = { 0xce };
    static const uint8_t prefixed[] = { 0x66, 0x48, 0xce };

    assert_ok(b, 1, SOFT_INSN_MODE_16, SOFT_INSN_KIND_INTO, 4, 1, 0, false);
    assert_ok(b, 1, SOFT_INSN_MODE_32, SOFT_INSN_KIND_INTO, 4, 1, 0, false);
    assert_err(b, 1, SOFT_INSN_MODE_64, SOFT_INSN_ERR_INTO_64);
    /* Prefixes do not rescue it. */
    assert_err(prefixed, 3, SOFT_INSN_MODE_64, SOFT_INSN_ERR_INTO_64);
}

static void test_int1(void)
{
    static const uint8_t b[] = { 0xf1 };
    size_t m;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        assert_ok(b, 1, all_modes[m], SOFT_INSN_KIND_INT1, 1, 1, 0, false);
    }
}

/* Every byte that is neither a prefix nor one of the four opcodes. */
static void test_non_soft_opcodes(void)
{
    size_t m;
    unsigned op;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        SoftInsnMode mode = all_modes[m];

        for (op = 0; op < 256; op++) {
            uint8_t b[] = { 0x66, op, 0x03 };
            int want;

            if (op == 0xcc || op == 0xcd || op == 0xce || op == 0xf1 ||
                memchr(legacy_prefixes, op, sizeof(legacy_prefixes))) {
                continue;
            }
            if (op >= 0x40 && op <= 0x4f) {
                if (mode == SOFT_INSN_MODE_64) {
                    continue;
                }
                want = SOFT_INSN_ERR_INC_DEC;
            } else {
                want = SOFT_INSN_ERR_NOT_SOFT;
            }
            assert_err(b + 1, 2, mode, want);
            assert_err(b, 3, mode, want);
        }
    }
}

static void test_each_legacy_prefix(void)
{
    size_t m, p, c;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        SoftInsnMode mode = all_modes[m];

        for (p = 0; p < G_N_ELEMENTS(legacy_prefixes); p++) {
            for (c = 0; c < G_N_ELEMENTS(opcode_cases); c++) {
                const OpcodeCase *oc = &opcode_cases[c];
                uint8_t b[3] = { legacy_prefixes[p], oc->bytes[0],
                                 oc->bytes[1] };
                size_t len = 1 + oc->len;

                if (oc->kind == SOFT_INSN_KIND_INTO &&
                    mode == SOFT_INSN_MODE_64) {
                    assert_err(b, len, mode, SOFT_INSN_ERR_INTO_64);
                } else if (legacy_prefixes[p] == 0xf0) {
                    assert_err(b, len, mode, SOFT_INSN_ERR_LOCK);
                } else {
                    assert_ok(b, len, mode, oc->kind, oc->vector, len, 1,
                              false);
                }
            }
        }
    }
}

/* §2.1.1: prefixes of one group may repeat; groups may be mixed. */
static void test_prefix_stacks(void)
{
    static const uint8_t all_benign[] = {
        0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67, 0xcd,
        0x21,
    };
    static const uint8_t repeated[] = { 0x66, 0x66, 0x66, 0x66, 0xcc };
    static const uint8_t rep_seg[] = { 0xf3, 0x2e, 0xf3, 0x2e, 0xf1 };
    size_t m;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        assert_ok(all_benign, sizeof(all_benign), all_modes[m],
                  SOFT_INSN_KIND_INT_N, 0x21, 12, 10, false);
        assert_ok(repeated, sizeof(repeated), all_modes[m],
                  SOFT_INSN_KIND_INT3, 3, 5, 4, false);
        assert_ok(rep_seg, sizeof(rep_seg), all_modes[m],
                  SOFT_INSN_KIND_INT1, 1, 5, 4, false);
    }
}

/* LOCK anywhere in the prefix run makes any of the four #UD. */
static void test_lock(void)
{
    size_t m, c, pos;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        SoftInsnMode mode = all_modes[m];

        for (c = 0; c < G_N_ELEMENTS(opcode_cases); c++) {
            const OpcodeCase *oc = &opcode_cases[c];

            for (pos = 0; pos < 4; pos++) {
                uint8_t b[6] = { 0x66, 0x2e, 0x67, 0x65 };
                size_t len = 4 + oc->len;
                int want = SOFT_INSN_ERR_LOCK;

                b[pos] = 0xf0;
                memcpy(b + 4, oc->bytes, oc->len);
                if (oc->kind == SOFT_INSN_KIND_INTO &&
                    mode == SOFT_INSN_MODE_64) {
                    /* Documented order: INTO_64 is checked before LOCK. */
                    want = SOFT_INSN_ERR_INTO_64;
                }
                assert_err(b, len, mode, want);
            }
        }
    }

    /* A REX between LOCK and the opcode does not hide the LOCK. */
    {
        static const uint8_t b[] = { 0xf0, 0x48, 0xcd, 0x80 };

        assert_err(b, sizeof(b), SOFT_INSN_MODE_64, SOFT_INSN_ERR_LOCK);
    }
}

/*
 * §2.3.11 (and #GP in vol. 3): 15 bytes is the limit.  Try each opcode
 * with exactly enough prefixes to reach 15, then one more.
 */
static void test_max_length(void)
{
    size_t m, c, p;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        SoftInsnMode mode = all_modes[m];

        for (c = 0; c < G_N_ELEMENTS(opcode_cases); c++) {
            const OpcodeCase *oc = &opcode_cases[c];

            if (oc->kind == SOFT_INSN_KIND_INTO &&
                mode == SOFT_INSN_MODE_64) {
                continue;
            }
            for (p = 0; p < G_N_ELEMENTS(benign_prefixes); p++) {
                uint8_t b[32];
                size_t npfx = 15 - oc->len;

                memset(b, benign_prefixes[p], sizeof(b));
                memcpy(b + npfx, oc->bytes, oc->len);
                assert_ok(b, 15, mode, oc->kind, oc->vector, 15, npfx,
                          false);

                memset(b, benign_prefixes[p], sizeof(b));
                memcpy(b + npfx + 1, oc->bytes, oc->len);
                assert_err(b, 16, mode, SOFT_INSN_ERR_TOO_LONG);
                /* More input than needed does not change the verdict. */
                assert_err(b, sizeof(b), mode, SOFT_INSN_ERR_TOO_LONG);
            }
        }
    }
}

/*
 * Once the limit is certain to be exceeded the answer is TOO_LONG even
 * when the input stops early: the CPU would not fetch further either.
 */
static void test_too_long_beats_truncated(void)
{
    uint8_t b[16];
    size_t m;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        memset(b, 0x3e, sizeof(b));
        assert_err(b, 15, all_modes[m], SOFT_INSN_ERR_TOO_LONG);
        assert_err(b, 14, all_modes[m], SOFT_INSN_ERR_TRUNCATED);
        /* 14 prefixes + CD: the imm8 would be byte 16. */
        b[14] = 0xcd;
        assert_err(b, 15, all_modes[m], SOFT_INSN_ERR_TOO_LONG);
    }

    /* REX bytes count towards the limit in 64-bit mode too. */
    memset(b, 0x48, sizeof(b));
    b[14] = 0xcc;
    assert_ok(b, 15, SOFT_INSN_MODE_64, SOFT_INSN_KIND_INT3, 3, 15, 14,
              true);
    b[14] = 0x48;
    b[15] = 0xcc;
    assert_err(b, 16, SOFT_INSN_MODE_64, SOFT_INSN_ERR_TOO_LONG);
}

static void test_rex_64(void)
{
    size_t c;
    unsigned rex;

    for (rex = 0x40; rex <= 0x4f; rex++) {
        for (c = 0; c < G_N_ELEMENTS(opcode_cases); c++) {
            const OpcodeCase *oc = &opcode_cases[c];
            uint8_t b[4] = { 0x66, rex, oc->bytes[0], oc->bytes[1] };

            if (oc->kind == SOFT_INSN_KIND_INTO) {
                assert_err(b + 1, 1 + oc->len, SOFT_INSN_MODE_64,
                           SOFT_INSN_ERR_INTO_64);
                continue;
            }
            assert_ok(b + 1, 1 + oc->len, SOFT_INSN_MODE_64, oc->kind,
                      oc->vector, 1 + oc->len, 1, true);
            /* Legacy prefix then REX is the canonical order. */
            assert_ok(b, 2 + oc->len, SOFT_INSN_MODE_64, oc->kind,
                      oc->vector, 2 + oc->len, 2, true);
        }
    }
}

/* §2.2.1: outside 64-bit mode 40-4F are INC/DEC, so no soft interrupt. */
static void test_rex_outside_64(void)
{
    size_t m, c;
    unsigned rex;

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        SoftInsnMode mode = all_modes[m];

        if (mode == SOFT_INSN_MODE_64) {
            continue;
        }
        for (rex = 0x40; rex <= 0x4f; rex++) {
            for (c = 0; c < G_N_ELEMENTS(opcode_cases); c++) {
                const OpcodeCase *oc = &opcode_cases[c];
                uint8_t b[4] = { 0x66, rex, oc->bytes[0], oc->bytes[1] };

                assert_err(b + 1, 1 + oc->len, mode, SOFT_INSN_ERR_INC_DEC);
                assert_err(b, 2 + oc->len, mode, SOFT_INSN_ERR_INC_DEC);
                /* A lone 40-4F is a complete INC/DEC, not truncation. */
                assert_err(b + 1, 1, mode, SOFT_INSN_ERR_INC_DEC);
            }
        }
    }
}

/*
 * §2.2.1: a REX must immediately precede the opcode; one followed by a
 * legacy prefix or by another REX is ignored by the CPU.  We accept the
 * encoding (the CPU executes it) but do not report the REX as effective.
 */
static void test_rex_not_last(void)
{
    static const uint8_t rex_legacy[] = { 0x48, 0x66, 0xcd, 0x21 };
    static const uint8_t legacy_rex[] = { 0x66, 0x48, 0xcd, 0x21 };
    static const uint8_t rex_rex[] = { 0x48, 0x41, 0xcc };
    static const uint8_t rex_legacy_rex[] = { 0x4f, 0xf3, 0x40, 0xf1 };

    assert_ok(rex_legacy, 4, SOFT_INSN_MODE_64, SOFT_INSN_KIND_INT_N, 0x21,
              4, 2, false);
    assert_ok(legacy_rex, 4, SOFT_INSN_MODE_64, SOFT_INSN_KIND_INT_N, 0x21,
              4, 2, true);
    assert_ok(rex_rex, 3, SOFT_INSN_MODE_64, SOFT_INSN_KIND_INT3, 3, 3, 2,
              true);
    assert_ok(rex_legacy_rex, 4, SOFT_INSN_MODE_64, SOFT_INSN_KIND_INT1, 1,
              4, 3, true);
}

/*
 * Cut a set of valid encodings at every byte position.  The decoder gets
 * the full buffer but a shorter length, so any read past @len would turn
 * TRUNCATED into success and fail the test even without ASan.
 */
static void test_truncation(void)
{
    static const struct {
        uint8_t bytes[16];
        size_t len;
        SoftInsnMode mode;
    } cases[] = {
        { { 0xcc }, 1, SOFT_INSN_MODE_32 },
        { { 0xcd, 0x80 }, 2, SOFT_INSN_MODE_16 },
        { { 0xce }, 1, SOFT_INSN_MODE_32 },
        { { 0xf1 }, 1, SOFT_INSN_MODE_64 },
        { { 0x66, 0x67, 0xcd, 0x03 }, 4, SOFT_INSN_MODE_32 },
        { { 0x26, 0x41, 0xcd, 0xff }, 4, SOFT_INSN_MODE_64 },
        { { 0x48, 0x66, 0x2e, 0xcc }, 4, SOFT_INSN_MODE_64 },
        { { 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67,
            0xf2, 0xf3, 0x4a, 0xcd, 0x00 }, 15, SOFT_INSN_MODE_64 },
        { { 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67,
            0xf2, 0xf3, 0x66, 0x66, 0xce }, 15, SOFT_INSN_MODE_16 },
    };
    size_t i, cut;

    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        SoftInsn insn;

        g_assert_cmpint(soft_insn_decode(cases[i].bytes, cases[i].len,
                                         cases[i].mode, &insn), ==,
                        SOFT_INSN_OK);
        g_assert_cmpuint(insn.length, ==, cases[i].len);
        for (cut = 0; cut < cases[i].len; cut++) {
            g_assert_cmpint(soft_insn_decode(cases[i].bytes, cut,
                                             cases[i].mode, &insn), ==,
                            SOFT_INSN_ERR_TRUNCATED);
            g_assert_cmpint(insn.kind, ==, SOFT_INSN_KIND_NONE);
            assert_err(cases[i].bytes, cut, cases[i].mode,
                       SOFT_INSN_ERR_TRUNCATED);
        }
        /* Trailing bytes are not part of the instruction. */
        g_assert_cmpint(soft_insn_decode(cases[i].bytes, 16, cases[i].mode,
                                         &insn), ==, SOFT_INSN_OK);
        g_assert_cmpuint(insn.length, ==, cases[i].len);
    }
}

/* All inputs of up to two bytes, every mode, against the reference. */
static void test_exhaustive_two_bytes(void)
{
    size_t m;
    unsigned x, y;
    uint8_t b[2];

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        assert_agrees_with_ref(NULL, 0, all_modes[m]);
        for (x = 0; x < 256; x++) {
            b[0] = x;
            assert_agrees_with_ref(b, 1, all_modes[m]);
            for (y = 0; y < 256; y++) {
                b[1] = y;
                assert_agrees_with_ref(b, 2, all_modes[m]);
            }
        }
    }
}

/*
 * Longer inputs cannot be enumerated, but only a few byte classes matter;
 * enumerate all strings of up to five bytes over one representative of
 * each class (plus a few extra vectors).
 */
static void test_exhaustive_alphabet(void)
{
    static const uint8_t alphabet[] = {
        0xf0, 0xf3, 0x2e, 0x66, 0x67, 0x40, 0x48, 0x4f, 0xcc, 0xcd, 0xce,
        0xf1, 0x03, 0x90, 0x0f,
    };
    const size_t n = G_N_ELEMENTS(alphabet);
    size_t m, len, idx, total, k;
    uint8_t b[5];

    for (m = 0; m < G_N_ELEMENTS(all_modes); m++) {
        for (len = 0; len <= sizeof(b); len++) {
            total = 1;
            for (k = 0; k < len; k++) {
                total *= n;
            }
            for (idx = 0; idx < total; idx++) {
                size_t v = idx;

                for (k = 0; k < len; k++) {
                    b[k] = alphabet[v % n];
                    v /= n;
                }
                assert_agrees_with_ref(b, len, all_modes[m]);
            }
        }
    }
}

/* Deterministic pseudo-random long inputs rich in prefixes. */
static void test_random_long(void)
{
    GRand *rand = g_rand_new_with_seed(0x50f71235);
    uint8_t b[20];
    size_t iter, k;

    for (iter = 0; iter < 200000; iter++) {
        size_t len = g_rand_int_range(rand, 0, sizeof(b) + 1);
        SoftInsnMode mode = all_modes[g_rand_int_range(rand, 0, 3)];

        for (k = 0; k < len; k++) {
            /* Mostly prefixes so that long encodings are reached. */
            if (g_rand_int_range(rand, 0, 8)) {
                b[k] = g_rand_boolean(rand) ?
                    benign_prefixes[g_rand_int_range(rand, 0,
                                    G_N_ELEMENTS(benign_prefixes))] :
                    0x40 + g_rand_int_range(rand, 0, 16);
            } else {
                b[k] = g_rand_int_range(rand, 0, 256);
            }
        }
        assert_agrees_with_ref(b, len, mode);
    }
    g_rand_free(rand);
}

static void test_invalid_args(void)
{
    static const uint8_t b[] = { 0xcc };
    SoftInsn insn;

    g_assert_cmpint(soft_insn_decode(b, 1, SOFT_INSN_MODE_32, NULL), ==,
                    SOFT_INSN_ERR_INVALID_ARG);
    g_assert_cmpint(soft_insn_decode(NULL, 1, SOFT_INSN_MODE_32, &insn), ==,
                    SOFT_INSN_ERR_INVALID_ARG);
    g_assert_cmpint(soft_insn_decode(b, 1, (SoftInsnMode)8, &insn), ==,
                    SOFT_INSN_ERR_INVALID_ARG);
    g_assert_cmpint(insn.kind, ==, SOFT_INSN_KIND_NONE);
    g_assert_cmpint(soft_insn_decode(NULL, 0, SOFT_INSN_MODE_32, &insn), ==,
                    SOFT_INSN_ERR_TRUNCATED);
}

static void test_strerror(void)
{
    static const int errs[] = {
        SOFT_INSN_OK, SOFT_INSN_ERR_INVALID_ARG, SOFT_INSN_ERR_TRUNCATED,
        SOFT_INSN_ERR_NOT_SOFT, SOFT_INSN_ERR_TOO_LONG,
        SOFT_INSN_ERR_INTO_64, SOFT_INSN_ERR_INC_DEC, SOFT_INSN_ERR_LOCK,
    };
    const char *unknown = soft_insn_strerror(-1000);
    size_t i, j;

    g_assert_nonnull(unknown);
    g_assert_cmpstr(soft_insn_strerror(1), ==, unknown);
    for (i = 0; i < G_N_ELEMENTS(errs); i++) {
        g_assert_nonnull(soft_insn_strerror(errs[i]));
        g_assert_cmpstr(soft_insn_strerror(errs[i]), !=, unknown);
        for (j = 0; j < i; j++) {
            g_assert_cmpstr(soft_insn_strerror(errs[i]), !=,
                            soft_insn_strerror(errs[j]));
        }
    }
    g_assert_cmpstr(soft_insn_kind_name(SOFT_INSN_KIND_INT3), ==, "INT3");
    g_assert_cmpstr(soft_insn_kind_name((SoftInsnKind)99), ==, "none");
}

static void test_matches(void)
{
    SoftInsn none = { .kind = SOFT_INSN_KIND_NONE };
    SoftInsn into = {
        .kind = SOFT_INSN_KIND_INTO, .vector = 4, .length = 1,
    };

    g_assert_false(soft_insn_matches(NULL, 3, SOFT_INSN_KIND_INT3));
    g_assert_false(soft_insn_matches(&none, 0, SOFT_INSN_KIND_NONE));
    g_assert_true(soft_insn_matches(&into, 4, SOFT_INSN_KIND_INTO));
    g_assert_false(soft_insn_matches(&into, 4, SOFT_INSN_KIND_INT_N));
    g_assert_false(soft_insn_matches(&into, 3, SOFT_INSN_KIND_INTO));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/soft-insn/sdm-vol2-int/int3", test_int3);
    g_test_add_func("/soft-insn/sdm-vol2-int/int-n", test_int_n);
    g_test_add_func("/soft-insn/sdm-vol2-int/int-n-3-is-not-int3",
                    test_int_n_3_is_not_int3);
    g_test_add_func("/soft-insn/sdm-vol2-int/into", test_into);
    g_test_add_func("/soft-insn/sdm-vol2-int/int1", test_int1);
    g_test_add_func("/soft-insn/sdm-vol2-int/non-soft-opcodes",
                    test_non_soft_opcodes);
    g_test_add_func("/soft-insn/sdm-vol2-2.1.1/each-legacy-prefix",
                    test_each_legacy_prefix);
    g_test_add_func("/soft-insn/sdm-vol2-2.1.1/prefix-stacks",
                    test_prefix_stacks);
    g_test_add_func("/soft-insn/sdm-vol2-lock/lock-is-ud", test_lock);
    g_test_add_func("/soft-insn/sdm-vol2-2.3.11/max-length-15",
                    test_max_length);
    g_test_add_func("/soft-insn/sdm-vol2-2.3.11/too-long-beats-truncated",
                    test_too_long_beats_truncated);
    g_test_add_func("/soft-insn/sdm-vol2-2.2.1/rex-64", test_rex_64);
    g_test_add_func("/soft-insn/sdm-vol2-2.2.1/rex-is-inc-dec-outside-64",
                    test_rex_outside_64);
    g_test_add_func("/soft-insn/sdm-vol2-2.2.1/rex-not-before-opcode",
                    test_rex_not_last);
    g_test_add_func("/soft-insn/truncation/every-position",
                    test_truncation);
    g_test_add_func("/soft-insn/reference/exhaustive-two-bytes",
                    test_exhaustive_two_bytes);
    g_test_add_func("/soft-insn/reference/alphabet-up-to-five-bytes",
                    test_exhaustive_alphabet);
    g_test_add_func("/soft-insn/reference/random-long", test_random_long);
    g_test_add_func("/soft-insn/api/invalid-args", test_invalid_args);
    g_test_add_func("/soft-insn/api/strerror", test_strerror);
    g_test_add_func("/soft-insn/api/matches", test_matches);

    return g_test_run();
}
