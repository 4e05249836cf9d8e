#!/usr/bin/env python3
"""
check-layers: our C code in one-way layers (issue #13)

    accelerator -> mirror -> observer -> core        tcg: on its own
    helper -> core (the privileged observer helper, its own program)

A file may include, call or read what its own layer or a lower one
defines, never a higher one; tcg may use nothing of ours outside tcg and
nothing of ours may use it.  Over the product files (every .c and .h of
the repository outside tests/ and build directories), five checks, one
TAP line each:

  layer table   every product file matches a pattern of LAYER_TABLE;
  include cycles  no cycle of #include "..." among our files;
  call cycles   no cycle among modules (foo.c and foo.h are one module),
                with an edge A -> B when A names a function or global
                variable that B defines non-static (or static in a
                header: a static inline is every includer's);
  layering      every include and call edge stays in its layer or goes
                down;
  product use   every non-static function and global variable is named by
                another product file, by a line a hook patch adds
                (scripts/patches/*.patch), or by QEMU's code generated from
                our QAPI schema (qmp_<command>); one used only in its own
                file should be static, one used only by tests/ should go.

Includes resolve like the two builds do: relative to the including file
and to target-i386/ (the standalone build), and in QEMU's tree, where
build-fork.sh's OVERLAY puts our directories, relative to the file, the
tree's root, include/ and target/i386/.  Definitions and references come
from a light C parser (comments, strings and preprocessor lines out, then
top-level items split at ';' and at function bodies); it understands the
QEMU style of our code, not every C program.  trace_* functions are
generated from trace-events and not ours.

    scripts/check-layers.py [--root DIR] [--layers FILE.json]
                            [--overlay SRC:DST]... [-v]

--layers replaces LAYERS and LAYER_TABLE with {"layers": {name: rank or
null}, "table": [[pattern, layer], ...]}.  Exit status 1 if a check
failed.  tests/unit/test_check_layers.py plants each kind of violation in
a synthetic tree.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import fnmatch
import json
import os
import re
import sys
from pathlib import Path, PurePosixPath

# Layers and their rank: an edge may not go to a higher rank.  A layer
# ranked None is isolated: no edge may leave it or enter it.
LAYERS = {
    "accel": 3,
    "mirror": 2,
    "observer": 1,
    "helper": 1,
    "core": 0,
    "tcg": None,
}

# Repository path -> layer; the first pattern that matches wins, and '*'
# does not cross '/'.  A product .c/.h file that matches none is an error.
LAYER_TABLE = [
    ("accel/nested-kvm/*.[ch]", "accel"),
    ("target-i386/mirror/nested-mirror*.[ch]", "mirror"),
    ("target-i386/mirror/nested-observer*.[ch]", "observer"),
    # Only includes the generated trace header; the lowest user owns it.
    ("target-i386/mirror/trace.h", "observer"),
    ("target-i386/*.[ch]", "core"),
    ("target-i386/tcg/*.[ch]", "tcg"),
    ("scripts/observer-helper/*.[ch]", "helper"),
]

# Where build-fork.sh lays our directories in QEMU's tree, when the tree
# checked has no scripts/build-fork.sh to read its OVERLAY from.
DEFAULT_OVERLAY = [
    ("accel/nested-kvm", "accel/nested-kvm"),
    ("target-i386", "target/i386/nested-kvm"),
]

# QEMU's quote-include search path besides the including file's directory.
QEMU_INCLUDE_DIRS = ["", "include", "target/i386"]
# The standalone build's (target-i386/meson.build).
STANDALONE_INCLUDE_DIRS = ["target-i386"]

# Top-level directories that hold no product code (nor do build-*/ and
# hidden ones).
SKIP_DIRS = {"tests", "build"}

IGNORED_PREFIXES = ("trace_",)

# ---------------------------------------------------------------------
# Reading C


SOURCE_RE = re.compile(r"""
    (?P<comment>/\*.*?(?:\*/|\Z)) | (?P<line>//[^\n]*)
  | (?P<str>"(?:\\.|[^"\\\n])*"?) | (?P<chr>'(?:\\.|[^'\\\n])*'?)
""", re.S | re.X)

TOKEN_RE = re.compile(r"""
    (?P<cont>\\\n) | (?P<nl>\n) | (?P<ws>[ \t\r\f\v]+)
  | (?P<id>[A-Za-z_]\w*) | (?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)
  | (?P<op>->|\.\.\.|\#\#|.)
""", re.X)

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.M)

KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern
    float for goto if inline int long register restrict return short signed
    sizeof static struct switch typedef union unsigned void volatile while
    _Bool _Static_assert typeof __typeof__ __attribute__ bool
""".split())


def strip_comments(text):
    """Comments out (newlines kept); string and char literals kept."""
    def repl(m):
        if m.group("comment") is not None:
            return " " + "\n" * m.group(0).count("\n")
        if m.group("line") is not None:
            return " "
        return m.group(0)
    return SOURCE_RE.sub(repl, text)


def blank_literals(text):
    def repl(m):
        if m.group("str") is not None:
            return '""'
        if m.group("chr") is not None:
            return "' '"
        return m.group(0)
    return SOURCE_RE.sub(repl, text)


class Tok:
    __slots__ = ("text", "kind", "line", "start", "end")

    def __init__(self, text, kind, line, start, end):
        self.text, self.kind, self.line = text, kind, line
        self.start, self.end = start, end

    def __repr__(self):
        return f"{self.text}@{self.line}"


def tokenize(text):
    """Tokens of code without comments and literals; preprocessor
    directives come out separately as lists of tokens."""
    code, directives = [], []
    line, at_start, directive = 1, True, None
    for m in TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind == "cont":
            line += 1
            continue
        if kind == "nl":
            line += 1
            at_start = True
            if directive is not None:
                directives.append(directive)
                directive = None
            continue
        if kind == "ws":
            continue
        tok = Tok(m.group(0), kind, line, m.start(), m.end())
        if at_start and tok.text == "#":
            directive = []
        elif directive is not None:
            directive.append(tok)
        else:
            code.append(tok)
        at_start = False
    if directive is not None:
        directives.append(directive)
    return code, directives


def match_close(toks, i):
    """Index of the bracket closing toks[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for j in range(i, len(toks)):
        t = toks[j].text
        if t in pairs:
            stack.append(pairs[t])
        elif t in (")", "]", "}"):
            if stack and stack[-1] == t:
                stack.pop()
            if not stack:
                return j
    return len(toks) - 1


def top_level(toks):
    """(start, end, body) of each top-level item, split at ';' and after
    a function body; body is the offset of a function's '{', else None."""
    items = []
    i, n = 0, len(toks)
    while i < n:
        start = i
        while i < n:
            t = toks[i].text
            if t in ("(", "["):
                i = match_close(toks, i) + 1
            elif t == "{":
                close = match_close(toks, i)
                if is_function_head(toks[start:i]):
                    items.append((start, close + 1, i - start))
                    i = close + 1
                    break
                i = close + 1
            elif t == ";":
                items.append((start, i, None))
                i += 1
                break
            else:
                i += 1
        else:
            if start < n:
                items.append((start, n, None))
    return items


def depth0(toks):
    """Indices of the tokens of toks outside any bracket."""
    out, depth = [], 0
    for i, t in enumerate(toks):
        if t.text in ("(", "[", "{"):
            if depth == 0:
                out.append(i)
            depth += 1
        elif t.text in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                out.append(i)
        elif depth == 0:
            out.append(i)
    return out


def is_function_head(head):
    if not head or head[-1].text != ")":
        return False
    top = [head[i].text for i in depth0(head)]
    # "struct foo *f(void) {" is a function; a struct definition's head
    # never ends in ')'.
    return "=" not in top and not (top and top[0] == "typedef")


def last_group_start(head):
    """Index of the '(' of the last top-level parenthesis group."""
    close = len(head) - 1
    depth = 0
    for i in range(close, -1, -1):
        t = head[i].text
        if t == ")":
            depth += 1
        elif t == "(":
            depth -= 1
            if depth == 0:
                return i
    return 0


def refs_in(toks):
    """Identifier tokens that may name a function or variable: not a
    member after '.' or '->', not a keyword."""
    out = []
    for i, t in enumerate(toks):
        if t.kind != "id" or t.text in KEYWORDS:
            continue
        if i and toks[i - 1].text in (".", "->"):
            continue
        out.append(t)
    return out


class Def:
    __slots__ = ("name", "kind", "static", "path", "line")

    def __init__(self, name, kind, static, path, line):
        self.name, self.kind, self.static = name, kind, static
        self.path, self.line = path, line


class Ref:
    __slots__ = ("name", "path", "line", "within")

    def __init__(self, name, path, line, within):
        self.name, self.path, self.line, self.within = \
            name, path, line, within


class Source:
    """One C file: its quoted includes, definitions and references."""

    def __init__(self, path, text):
        self.path = path
        text = strip_comments(text)
        self.includes = [(text.count("\n", 0, m.start()) + 1, m.group(1))
                         for m in INCLUDE_RE.finditer(text)]
        toks, directives = tokenize(blank_literals(text))
        self.defs, self.refs = [], []
        for d in directives:
            self._directive(d)
        for start, end, body in top_level(toks):
            item = toks[start:end]
            if body is not None:
                self._function(item[:body], item[body:])
            else:
                self._declaration(item)

    def _ref(self, toks, within):
        self.refs.extend(Ref(t.text, self.path, t.line, within)
                         for t in refs_in(toks))

    def _def(self, tok, kind, static):
        self.defs.append(Def(tok.text, kind, static, self.path, tok.line))

    def _directive(self, d):
        # A macro's body names what its expansions will use.
        if len(d) >= 2 and d[0].text == "define":
            body = d[2:]
            if body and body[0].text == "(" and body[0].start == d[1].end:
                close = match_close(body, 0)
                params = {t.text for t in body[:close]}
                body = [t for t in body[close + 1:]
                        if t.text not in params]
            self._ref(body, None)

    def _function(self, head, body):
        params = last_group_start(head)
        if params == 0 or head[params - 1].kind != "id" or \
                head[params - 1].text in KEYWORDS:
            self._ref(body, None)
            return
        name = head[params - 1]
        # Macro invocations merged into the head (no ';' after them).
        for i in depth0(head[:params - 1]):
            if head[i].text == "(":
                self._ref(head[i:match_close(head, i) + 1], name.text)
        self._def(name, "function",
                  any(t.text == "static" for t in head[:params]))
        self._ref(body, name.text)

    def _declaration(self, item):
        if not item or item[0].text in ("typedef", "extern"):
            return
        top = depth0(item)
        texts = [item[i].text for i in top]
        # FOO(...) at file scope: a macro invocation such as type_init().
        if item[0].kind == "id" and len(item) > 1 and item[1].text == "(":
            self._ref(item[1:], None)
            return
        static = "static" in texts
        if "=" in texts:
            eq = top[texts.index("=")]
            name = self._declarator(item[:eq])
            if name is not None:
                self._def(name, "variable", static)
            self._ref(item[eq + 1:], name.text if name else None)
            return
        if "(" in texts:
            paren = top[texts.index("(")]
            # A function pointer variable, "type (*name)(args)"; anything
            # else with a parameter list here is a prototype.
            if paren + 2 < len(item) and item[paren + 1].text == "*" and \
                    item[paren + 2].kind == "id":
                self._def(item[paren + 2], "variable", static)
            return
        if "{" in texts:
            # struct/union/enum definition, maybe with declarators after.
            close = top[len(texts) - 1 - texts[::-1].index("}")]
            rest = item[close + 1:]
            if not rest:
                return
            item, top = rest, depth0(rest)
            texts = [item[i].text for i in top]
        elif len(texts) == 2 and texts[0] in ("struct", "union", "enum"):
            return                      # forward declaration
        # type name[, name...]; the first one needs a type before it.
        cut = [i for i in top if item[i].text == ","] + [len(item)]
        begin = 0
        for c in cut:
            name = self._declarator(item[begin:c])
            if name is not None and (begin or c > 1):
                self._def(name, "variable", static)
            begin = c + 1

    @staticmethod
    def _declarator(toks):
        """The name in "type *name[N]" (what comes before '=' or ',')."""
        idx = [i for i in depth0(toks) if toks[i].text not in ("[", "]")]
        if not idx:
            return None
        t = toks[idx[-1]]
        return t if t.kind == "id" and t.text not in KEYWORDS else None


# ---------------------------------------------------------------------
# The tree


def glob_match(pattern, path):
    pp, fp = pattern.split("/"), path.split("/")
    return len(pp) == len(fp) and \
        all(fnmatch.fnmatchcase(f, p) for p, f in zip(pp, fp))


def product_files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and not (
                not rel and (d in SKIP_DIRS or d.startswith("build-"))))
        out += [f"{rel}/{f}" if rel else f for f in sorted(filenames)
                if f.endswith((".c", ".h"))]
    return out


def read_overlay(root):
    """build-fork.sh's OVERLAY, (repo dir, QEMU tree dir) pairs."""
    script = root / "scripts" / "build-fork.sh"
    if not script.is_file():
        return DEFAULT_OVERLAY
    m = re.search(r"^OVERLAY=\((.*?)^\)", script.read_text(), re.M | re.S)
    if not m:
        return DEFAULT_OVERLAY
    return [tuple(e.split(":", 1))
            for e in re.findall(r'"([^"]+:[^"]+)"', m.group(1))]


def norm(path):
    """Normalise a '/' path; None if it climbs out of the root."""
    parts = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


class Tree:
    def __init__(self, root, layers, table, overlay):
        self.root = root
        self.layers, self.table = layers, table
        # Longest prefix first, so target-i386/tcg wins over target-i386.
        self.overlay = sorted(overlay, key=lambda e: -len(e[0]))
        self.files = product_files(root)
        self.fileset = set(self.files)
        self.sources = {f: Source(f, (root / f).read_text(errors="replace"))
                        for f in self.files}

    def layer(self, path):
        for pattern, layer in self.table:
            if glob_match(pattern, path):
                return layer
        return None

    def to_qemu(self, path):
        for src, dst in self.overlay:
            if path == src or path.startswith(src + "/"):
                return dst + path[len(src):]
        return None

    def from_qemu(self, path):
        best = None
        for src, dst in self.overlay:
            if path == dst or path.startswith(dst + "/"):
                if best is None or len(dst) > len(best[1]):
                    best = (src, dst)
        return best[0] + path[len(best[1]):] if best else None

    def resolve(self, including, name):
        """The product file an #include "name" in `including` reads."""
        here = str(PurePosixPath(including).parent)
        cands = [f"{here}/{name}"]
        cands += [f"{d}/{name}" for d in STANDALONE_INCLUDE_DIRS]
        qemu = self.to_qemu(including)
        if qemu is not None:
            qdirs = [str(PurePosixPath(qemu).parent)] + QEMU_INCLUDE_DIRS
            for d in qdirs:
                q = norm(f"{d}/{name}" if d else name)
                back = self.from_qemu(q) if q else None
                if back:
                    cands.append(back)
        for c in cands:
            c = norm(c)
            if c in self.fileset:
                return c
        return None


def module(path):
    return re.sub(r"\.[ch]$", "", path)


def sccs(nodes, edges):
    """Tarjan: the strongly connected components of a graph."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(max(1000, 4 * len(nodes) + 100))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def patch_identifiers(root):
    names = set()
    for p in sorted((root / "scripts" / "patches").glob("*.patch")):
        for line in p.read_text(errors="replace").splitlines():
            if line.startswith("+") and not line.startswith("+++"):
                names.update(re.findall(r"[A-Za-z_]\w*", line[1:]))
    return names


def qapi_commands(root, files_dirs):
    """qmp_<command> of every command in our QAPI schema: QEMU's
    generated marshallers call them."""
    names = set()
    for d in files_dirs:
        for p in sorted((root / d).rglob("*.json")):
            text = p.read_text(errors="replace")
            for cmd in re.findall(r"""['"]command['"]\s*:\s*['"]([\w-]+)""",
                                  text):
                names.add("qmp_" + cmd.replace("-", "_"))
    return names


def test_identifiers(root):
    names = set()
    tests = root / "tests"
    if tests.is_dir():
        for p in tests.rglob("*.[ch]"):
            names.update(re.findall(r"[A-Za-z_]\w*",
                                    p.read_text(errors="replace")))
    return names


# ---------------------------------------------------------------------
# The checks: each returns its problems, (summary, detail) pairs


def check_table(tree):
    return [(f"{f} has no layer", "it matches no pattern of the layer "
             "table (scripts/check-layers.py)")
            for f in tree.files if tree.layer(f) is None]


def include_edges(tree):
    edges = []
    for f in tree.files:
        for line, name in tree.sources[f].includes:
            target = tree.resolve(f, name)
            if target is not None:
                edges.append((f, line, name, target))
    return edges


def check_include_cycles(tree, edges):
    graph = {}
    for f, _, _, target in edges:
        graph.setdefault(f, set()).add(target)
    problems = []
    for comp in sccs(tree.files, graph):
        if len(comp) > 1 or comp[0] in graph.get(comp[0], ()):
            members = set(comp)
            problems.append((
                "include cycle among " + ", ".join(comp),
                "; ".join(f"{f}:{line} includes \"{name}\""
                          for f, line, name, target in edges
                          if f in members and target in members)))
    return problems


def exported(tree):
    """name -> [Def] of what other files can name: non-static, or static
    in a header (every includer gets its own copy)."""
    out = {}
    for f in tree.files:
        for d in tree.sources[f].defs:
            if d.name.startswith(IGNORED_PREFIXES):
                continue
            if not d.static or f.endswith(".h"):
                out.setdefault(d.name, []).append(d)
    return out


def call_edges(tree, exports):
    """(from file, to file) -> sorted names, across modules."""
    edges = {}
    for f in tree.files:
        for r in tree.sources[f].refs:
            for d in exports.get(r.name, ()):
                if module(d.path) != module(f):
                    edges.setdefault((f, d.path), set()).add(r.name)
    return {k: sorted(v) for k, v in edges.items()}


def check_call_cycles(tree, edges):
    graph = {}
    for (a, b) in edges:
        graph.setdefault(module(a), set()).add(module(b))
    files_of = {}
    for f in tree.files:
        files_of.setdefault(module(f), []).append(f)
    problems = []
    for comp in sccs(files_of, graph):
        if len(comp) < 2:
            continue
        members = set(comp)
        files = [f for m in comp for f in files_of[m]]
        why = [f"{a} -> {b} ({', '.join(names)})"
               for (a, b), names in sorted(edges.items())
               if module(a) in members and module(b) in members]
        problems.append(("call cycle among " + ", ".join(files),
                         "; ".join(why)))
    return problems


def layer_violation(tree, a, b):
    la, lb = tree.layer(a), tree.layer(b)
    if la is None or lb is None or la == lb:
        return None
    ra, rb = tree.layers.get(la), tree.layers.get(lb)
    if ra is None or rb is None:
        iso = la if ra is None else lb
        return f"{iso} is isolated"
    if rb > ra:
        return "upward"
    return None


def check_layering(tree, incs, calls):
    problems = []
    for f, line, name, target in incs:
        why = layer_violation(tree, f, target)
        if why:
            problems.append((f"{f} ({tree.layer(f)}) -> {target} "
                             f"({tree.layer(target)}): {why}",
                             f"{f}:{line} includes \"{name}\""))
    for (a, b), names in sorted(calls.items()):
        why = layer_violation(tree, a, b)
        if why:
            problems.append((f"{a} ({tree.layer(a)}) -> {b} "
                             f"({tree.layer(b)}): {why}",
                             f"{a} uses {', '.join(names)}"))
    return problems


def check_product_use(tree, patch_names, generated, test_names):
    used_by = {}
    for f in tree.files:
        for r in tree.sources[f].refs:
            used_by.setdefault(r.name, []).append(r)
    problems = []
    for f in tree.files:
        for d in tree.sources[f].defs:
            if d.static or d.name.startswith(IGNORED_PREFIXES):
                continue
            refs = used_by.get(d.name, [])
            if any(r.path != f for r in refs) or d.name in patch_names \
                    or d.name in generated:
                continue
            what = f"{d.kind} {d.name} of {f}"
            where = f"{f}:{d.line}"
            tests = " and by tests" if d.name in test_names else ""
            if any(r.within != d.name for r in refs):
                problems.append((f"{what} is defined non-static but used "
                                 f"only in its own file{tests}",
                                 f"{where}: make it static"))
            elif tests:
                problems.append((f"{what} is used only by tests",
                                 f"{where}: no product file, hook patch "
                                 "or QAPI command names it"))
            else:
                problems.append((f"{what} is used by nothing", where))
    return problems


def report(name, problems, verbose_lines=()):
    """One TAP line; under a failure, each problem on its own line."""
    if problems:
        summary = "; ".join(s for s, _ in problems)
        if len(problems) > 1 and len(summary) > 200:
            summary = f"{problems[0][0]} (and {len(problems) - 1} more)"
        print(f"not ok - layers: {name}: {summary}")
        for s, detail in problems:
            print(f"  {s}")
            print(f"      {detail}")
    else:
        print(f"ok - layers: {name}")
    for line in verbose_lines:
        print(f"  {line}")
    return not problems


def load_layers(path):
    data = json.loads(Path(path).read_text())
    return dict(data["layers"]), [tuple(e) for e in data["table"]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--root", type=Path,
                    default=Path(__file__).resolve().parents[1])
    ap.add_argument("--layers", help="JSON file replacing the layer table")
    ap.add_argument("--overlay", action="append", metavar="SRC:DST",
                    help="repository dir:QEMU tree dir (default: "
                    "OVERLAY of scripts/build-fork.sh)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also list every file's layer and every edge")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    layers, table = (load_layers(args.layers) if args.layers
                     else (LAYERS, LAYER_TABLE))
    unknown = sorted({lay for _, lay in table if lay not in layers})
    if unknown:
        print(f"not ok - layers: layer table names unknown layers {unknown}")
        return 1
    overlay = ([tuple(o.split(":", 1)) for o in args.overlay]
               if args.overlay else read_overlay(root))
    tree = Tree(root, layers, table, overlay)
    exports = exported(tree)
    incs = include_edges(tree)
    calls = call_edges(tree, exports)
    dirs = sorted({f.split("/")[0] for f in tree.files})
    results = [
        report("layer table", check_table(tree),
               [f"{f}: {tree.layer(f)}" for f in tree.files]
               if args.verbose else ()),
        report("include cycles", check_include_cycles(tree, incs),
               [f"{f}:{line} -> {t}" for f, line, _, t in incs]
               if args.verbose else ()),
        report("call cycles", check_call_cycles(tree, calls),
               [f"{a} -> {b}: {', '.join(n)}"
                for (a, b), n in sorted(calls.items())]
               if args.verbose else ()),
        report("layering", check_layering(tree, incs, calls)),
        report("product use",
               check_product_use(tree, patch_identifiers(root),
                                 qapi_commands(root, dirs),
                                 test_identifiers(root))),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
