#!/usr/bin/env python3
"""
Negative controls for scripts/check-layers.py: tiny synthetic trees in a
temporary directory, one clean and one per planted violation, each
checked with its own layer table (--root, --layers).  The clean tree
must pass every check; each planted tree must fail exactly the check
that its violation belongs to, and name the culprit.

The synthetic tree has the same shape as ours: layers top > mid > low
and an isolated iso; a scripts/build-fork.sh whose OVERLAY maps each directory X/
to qemu/X/ in "QEMU's tree" (so an include written with the tree-mapped
path resolves); a hook patch that calls into top/ and iso/; a QAPI
schema whose command top/ implements; and a tests/ directory that is no
product code (it calls upward and matches no layer, and must not count).

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
import nkvm  # noqa: E402  pylint: disable=wrong-import-position

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-layers.py"

LAYERS = {
    "layers": {"top": 2, "mid": 1, "low": 0, "iso": None},
    "table": [["top/*.[ch]", "top"], ["mid/*.[ch]", "mid"],
              ["low/*.[ch]", "low"], ["iso/*.[ch]", "iso"]],
}

CHECKS = ("layer table", "include cycles", "call cycles", "layering",
          "product use")

CLEAN = {
    "scripts/build-fork.sh": """\
OVERLAY=(
    "top:qemu/top"
    "mid:qemu/mid"
    "low:qemu/low"
)
""",
    "scripts/patches/0001-hooks.patch": """\
--- a/qemu/vl.c
+++ b/qemu/vl.c
@@ -1,2 +1,4 @@
 int main(void)
 {
+    app_run();
+    iso_entry(0);
""",
    "top/schema.json": "{ 'command': 'x-query-app', 'returns': 'int' }\n",
    "top/app.c": """\
#include "qemu/osdep.h"
#include "../mid/svc.h"

int qmp_x_query_app(void)
{
    return svc_do(1);
}

void app_run(void)
{
    svc_do(2);
}
""",
    "mid/svc.h": """\
#ifndef SVC_H
#define SVC_H
#include "../low/util.h"
int svc_do(int x);
#endif
""",
    "mid/svc.c": """\
#include "svc.h"
#include "qemu/low/util.h"   /* QEMU's tree, through the OVERLAY */

typedef struct Ops {
    int (*fn)(int);
} Ops;

static int svc_helper(int x)
{
    return util_twice(x) + util_count;  /* "}" in a comment */
}

static const Ops svc_ops = {
    .fn = svc_helper,               /* a table, like QOM's or VMState's */
};

int svc_do(int x)
{
    const char *s = "util_add(";    /* a string names nothing */

    (void)s;
    return svc_ops.fn(util_add(x, 1)) + util_last() + !util_box_new();
}
""",
    "low/util.h": """\
#ifndef UTIL_H
#define UTIL_H
extern int util_count;
int util_add(int a, int b);
struct util_box *util_box_new(void);
int util_last(void);

static inline int util_twice(int x)
{
    return 2 * x;
}
#endif
""",
    "low/util.c": """\
#include "util.h"

int util_count;

int util_add(int a, int b)
{
    util_count++;
    return a + b;
}

/* A function returning a struct pointer, then one after it. */
struct util_box *util_box_new(void)
{
    return 0;
}

int util_last(void)
{
    return util_add(0, 0);
}
""",
    "iso/iso.c": """\
int iso_entry(int x)
{
    return x;
}
""",
    # Not product code: may call anything, needs no layer.
    "tests/unit/test-util.c": """\
#include "../../low/util.h"
#include "../../top/app.h"
int main(void) { app_run(); return util_add(1, 2) - 3; }
""",
}

# Each: (name, files to add or replace, check that must fail, text that
# the failure must mention).
PLANTED = [
    ("file outside the layer table",
     {"other/stray.c": "static int stray;\n"},
     "layer table", "other/stray.c has no layer"),
    ("include cycle",
     {"low/a.h": '#include "b.h"\n', "low/b.h": '#include "a.h"\n'},
     "include cycles", "include cycle among low/a.h, low/b.h"),
    ("include cycle through a tree-mapped path",
     {"low/a.h": '#include "qemu/low/b.h"\n',
      "low/b.h": '#include "../low/a.h"\n'},
     "include cycles", "include cycle among low/a.h, low/b.h"),
    ("call cycle",
     {"low/ping.c": "int pong(int n);\n"
                    "int ping(int n)\n{\n    return n ? pong(n - 1) : 0;\n}\n",
      "low/pong.c": "int ping(int n);\n"
                    "int\npong(int n)\n{\n    return n ? ping(n - 1) : 1;\n}\n"},
     "call cycles", "call cycle among low/ping.c, low/pong.c"),
    ("upward include",
     {"low/util.c": '#include "util.h"\n#include "../mid/svc.h"\n'
                    + CLEAN["low/util.c"].split("\n", 1)[1]},
     "layering", "low/util.c (low) -> mid/svc.h (mid): upward"),
    ("upward call",
     {"top/extra.c": "int top_only(void)\n{\n    return 7;\n}\n",
      "low/util.c": CLEAN["low/util.c"].replace(
          "util_count++;", "util_count += top_only();")},
     "layering", "low/util.c (low) -> top/extra.c (top): upward"),
    ("upward use of a global variable",
     {"top/flags.c": "int top_flag;\n",
      "low/util.c": CLEAN["low/util.c"].replace(
          "util_count++;", "util_count += top_flag;")},
     "layering", "low/util.c (low) -> top/flags.c (top): upward"),
    ("call into the isolated layer",
     {"mid/svc.c": CLEAN["mid/svc.c"].replace(
         "(void)s;", "(void)s;\n    iso_entry(x);")},
     "layering", "mid/svc.c (mid) -> iso/iso.c (iso): iso is isolated"),
    ("function used only by tests",
     {"low/util.c": CLEAN["low/util.c"]
      + "\nint util_sub(int a, int b)\n{\n    return a - b;\n}\n",
      "tests/unit/test-sub.c": "int main(void) { return util_sub(1, 1); }\n"},
     "product use", "function util_sub of low/util.c is used only by tests"),
    ("non-static function used only in its own file",
     {"low/util.c": CLEAN["low/util.c"].replace(
         "int util_add", "int util_inc(int a)\n{\n    return a + 1;\n}\n\n"
         "int util_add").replace("return a + b;", "return util_inc(a) + b;")},
     "product use", "function util_inc of low/util.c is defined non-static "
     "but used only in its own file"),
]


def make_tree(base, files):
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# What -v must list for the clean tree: includes written three ways and
# calls into a function, a global and a header's static inline.
CLEAN_EDGES = [
    "top/app.c:2 -> mid/svc.h",
    "mid/svc.h:3 -> low/util.h",
    "mid/svc.c:2 -> low/util.h",
    "top/app.c -> mid/svc.c: svc_do",
    "mid/svc.c -> low/util.c: util_add, util_box_new, util_count, util_last",
    "mid/svc.c -> low/util.h: util_twice",
]


def run(root, layers_file, *extra):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root),
                           "--layers", str(layers_file), *extra],
                          capture_output=True, text=True, timeout=60,
                          check=False)
    results = {}
    for line in proc.stdout.splitlines():
        for check in CHECKS:
            if line.startswith(f"ok - layers: {check}"):
                results[check] = True
            elif line.startswith(f"not ok - layers: {check}:"):
                results[check] = False
    return proc, results


def main():
    tap = nkvm.Tap("layers self-test: ")
    with tempfile.TemporaryDirectory(prefix="check-layers-") as tmp:
        tmp = Path(tmp)
        layers_file = tmp / "layers.json"
        layers_file.write_text(json.dumps(LAYERS))

        clean = tmp / "clean"
        make_tree(clean, CLEAN)
        proc, results = run(clean, layers_file)
        tap.check(proc.returncode == 0 and
                  all(results.get(c) for c in CHECKS),
                  "a clean tree passes every check",
                  f"status {proc.returncode}\n{proc.stdout}{proc.stderr}")
        proc, _ = run(clean, layers_file, "-v")
        seen = {line.strip() for line in proc.stdout.splitlines()}
        missing = [e for e in CLEAN_EDGES if e not in seen]
        tap.check(not missing, "the clean tree's include and call edges "
                  "are all seen", f"missing {missing}\n{proc.stdout}")

        for i, (name, files, check, culprit) in enumerate(PLANTED):
            root = tmp / f"planted-{i}"
            make_tree(root, {**CLEAN, **files})
            proc, results = run(root, layers_file)
            others = [c for c in CHECKS if c != check and not results.get(c)]
            tap.check(proc.returncode == 1 and results.get(check) is False
                      and culprit in proc.stdout and not others,
                      f"{name} fails '{check}', and only that check",
                      f"status {proc.returncode}, also failed {others}\n"
                      f"{proc.stdout}{proc.stderr}")
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
