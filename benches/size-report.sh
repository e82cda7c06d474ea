#!/usr/bin/env bash
# Per-function code size of the size probe (benches/size-probe), as a markdown table.
#
# Builds the probe like benches/compare.rs does (`--profile wasm-size`: opt-level "z",
# fat LTO, one codegen unit, panic = abort; one --target-dir per allocator feature), but
# with symbols kept (CARGO_PROFILE_WASM_SIZE_STRIP=false: the code is byte-identical to
# the stripped build's), runs compare.rs's `wasm-opt -Oz` command on it (its feature flags,
# --strip-debug --strip-producers, plus --strip-target-features, which the stripped input
# compare.rs uses lacks: byte for byte the module compare.rs measures) with --print added,
# whose text output names the functions in their binary order. Then it parses the
# optimized module (LEB128 body sizes in the code section) and prints, per allocator:
#   - each function's body size in bytes (without its length prefix), largest first,
#     with its name demangled and shortened (no hash, no long crate paths);
#   - the code section's size, the sum for the allocator crate's own functions, for
#     core/alloc (panics, formatting: pulled in by the allocator) and for the probe's
#     exports (into which wasm-opt inlines the GlobalAlloc methods);
#   - the module's size after -Oz (compare.rs's number) and minus the bump probe.
#
# Usage: benches/size-report.sh [-n TOP] [--no-reference] [--raw] [ALLOCATOR...]
#   ALLOCATOR   size-probe features (default: wasm-alloc talc); the bump probe is always
#               built too, as the baseline for "minus bump".
#   -n TOP      rows per table (default 25; 0 = all).
#   --raw       also print the unoptimized (pre wasm-opt) table.
#   --no-reference  only the first allocator (skip talc).
# Environment: SIZE_REPORT_DIR (default: $CARGO_TARGET_DIR or <workspace>/target, then
#   /size-report), the build root; each feature gets its own --target-dir under it.
#   The workspace is the one this script lives in (so a copy of the tree measures itself).
# Needs: cargo with the wasm32-unknown-unknown target, wasm-opt (binaryen), python3.
# Any build or tool failure stops the script with a non-zero status.
set -euo pipefail

die() { echo "size-report: error: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOP=25
RAW=0
REFERENCE=1
ALLOCS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || die "-n needs a number"; TOP=$2; shift 2 ;;
        --raw) RAW=1; shift ;;
        --no-reference) REFERENCE=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) ALLOCS+=("$1"); shift ;;
    esac
done
if [ ${#ALLOCS[@]} -eq 0 ]; then
    ALLOCS=(wasm-alloc)
    [ "$REFERENCE" = 1 ] && ALLOCS+=(talc)
fi

command -v cargo >/dev/null || die "cargo not found"
command -v wasm-opt >/dev/null || die "wasm-opt not found (apt-get install binaryen)"
command -v python3 >/dev/null || die "python3 not found"

OUT=${SIZE_REPORT_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/size-report}
mkdir -p "$OUT"
TARGET=wasm32-unknown-unknown
# The same as benches/compare.rs's WASM_FEATURES.
WASM_FEATURES=(--enable-bulk-memory --enable-multivalue --enable-mutable-globals
    --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext)

# build FEATURE: builds the probe, leaves $OUT/FEATURE/{raw,opt}.wasm and opt.wat
build() {
    local feat=$1 dir="$OUT/$1"
    echo "size-report: building the size probe for $feat ($dir)" >&2
    if ! (cd "$ROOT" && CARGO_PROFILE_WASM_SIZE_STRIP=false CARGO_ENCODED_RUSTFLAGS="" \
        cargo build --quiet --profile wasm-size --target "$TARGET" -p size-probe \
        --features "$feat" --target-dir "$dir"); then
        die "cargo build of the size probe for '$feat' failed"
    fi
    local wasm="$dir/$TARGET/wasm-size/size_probe.wasm"
    [ -s "$wasm" ] || die "no module at $wasm"
    cp "$wasm" "$dir/raw.wasm"
    # Exactly compare.rs's command, plus --print: the IR after -Oz, whose function names
    # (in binary order) name the bodies of the stripped output. (-g would keep a name
    # section, but changes what -Oz does: with it, binaryen 108 keeps 6 more functions
    # and 120 more bytes of code for wasm-alloc.) --strip-target-features drops the one
    # section the unstripped input adds, so opt.wasm is byte-identical to compare.rs's.
    wasm-opt -Oz "${WASM_FEATURES[@]}" --print --strip-debug --strip-producers \
        --strip-target-features "$wasm" \
        -o "$dir/opt.wasm" >"$dir/opt.wat" || die "wasm-opt -Oz failed on $wasm"
}

build bump
for a in "${ALLOCS[@]}"; do
    [ "$a" = bump ] || build "$a"
done

python3 - "$OUT" "$TOP" "$RAW" "${ALLOCS[@]}" <<'PY'
import os, re, sys

out, top, raw = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
allocs = sys.argv[4:]

def fail(msg):
    print("size-report: error: " + msg, file=sys.stderr)
    sys.exit(1)

# --- wasm parsing ---------------------------------------------------------------------
def uleb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return r, i

def name_at(b, i):
    n, i = uleb(b, i)
    return b[i:i + n].decode("utf-8", "replace"), i + n

SECTION_NAMES = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
                 7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count",
                 13: "tag"}
SECTIONS = []

def parse(path):
    """(code section bytes incl. its header, [(func index, body size)], {index: name},
    imported function count, module size)"""
    b = open(path, "rb").read()
    if b[:4] != b"\0asm":
        fail(path + " is not a wasm module")
    i, imports, bodies, names, code_bytes, code_payload = 8, 0, [], {}, 0, b""
    exports = {}
    global SECTIONS
    SECTIONS = []
    while i < len(b):
        start = i
        sid = b[i]; i += 1
        size, i = uleb(b, i)
        end = i + size
        SECTIONS.append((SECTION_NAMES.get(sid, str(sid)) if sid else "custom " + name_at(b, i)[0], end - start))
        if sid == 2:  # imports: count the functions, which come first in the index space
            n, j = uleb(b, i)
            for _ in range(n):
                _, j = name_at(b, j); _, j = name_at(b, j)
                kind = b[j]; j += 1
                if kind == 0:
                    _, j = uleb(b, j); imports += 1
                elif kind == 1:
                    j += 1; fl, j = uleb(b, j); _, j = uleb(b, j)
                    if fl & 1: _, j = uleb(b, j)
                elif kind == 2:
                    fl, j = uleb(b, j); _, j = uleb(b, j)
                    if fl & 1: _, j = uleb(b, j)
                elif kind == 3:
                    j += 2
                elif kind == 4:
                    j += 1; _, j = uleb(b, j)
                else:
                    fail("%s: unknown import kind %d" % (path, kind))
        elif sid == 7:  # exports: names for functions the name section lacks
            n, j = uleb(b, i)
            for _ in range(n):
                nm, j = name_at(b, j)
                kind = b[j]; j += 1
                idx, j = uleb(b, j)
                if kind == 0: exports.setdefault(idx, nm)
        elif sid == 10:
            code_bytes = end - start
            code_payload = b[i:end]
            n, j = uleb(b, i)
            for k in range(n):
                sz, j2 = uleb(b, j)
                bodies.append((imports + k, sz))
                j = j2 + sz
            if j != end:
                fail(path + ": code section does not parse")
        elif sid == 0:
            nm, j = name_at(b, i)
            if nm == "name":
                while j < end:
                    sub = b[j]; j += 1
                    ssz, j = uleb(b, j)
                    if sub == 1:
                        n, k = uleb(b, j)
                        for _ in range(n):
                            idx, k = uleb(b, k)
                            fname, k = name_at(b, k)
                            names[idx] = fname
                    j += ssz
        i = end
    for idx, nm in exports.items():
        names.setdefault(idx, nm)
    return code_bytes, code_payload, bodies, names, imports, len(b)

# --- demangling (legacy _ZN…E and v0 _R…), then shortening ------------------------------
LEGACY_ESC = [("$SP$", "@"), ("$BP$", "*"), ("$RF$", "&"), ("$LT$", "<"), ("$GT$", ">"),
              ("$LP$", "("), ("$RP$", ")"), ("$C$", ","), ("$u20$", " "), ("$u27$", "'"),
              ("$u5b$", "["), ("$u5d$", "]"), ("$u7b$", "{"), ("$u7d$", "}"), ("$u7e$", "~"),
              ("$u3b$", ";"), ("$u2b$", "+"), ("$u22$", '"')]

def demangle_legacy(s):
    m = re.match(r"_?_ZN(.*)E$", s)
    if not m:
        return None
    body, parts, i = m.group(1), [], 0
    while i < len(body):
        n = re.match(r"\d+", body[i:])
        if not n:
            return None
        i += len(n.group(0)); ln = int(n.group(0))
        parts.append(body[i:i + ln]); i += ln
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = []
    for p in parts:
        if p.startswith("_$"):
            p = p[1:]
        for a, c in LEGACY_ESC:
            p = p.replace(a, c)
        out.append(p.replace("..", "::"))
    return "::".join(out)

BASIC = {"a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32", "h": "u8",
         "i": "isize", "j": "usize", "l": "i32", "m": "u32", "n": "i128", "o": "u128",
         "s": "i16", "t": "u16", "u": "()", "v": "...", "x": "i64", "y": "u64", "z": "!",
         "p": "_"}

class V0:
    def __init__(self, s):
        self.s, self.i = s, 0
    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""
    def eat(self, c):
        if self.peek() == c:
            self.i += 1; return True
        return False
    def b62(self):
        if self.eat("_"):
            return 0
        v = 0
        while not self.eat("_"):
            c = self.s[self.i]; self.i += 1
            v = v * 62 + ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".index(c))
        return v + 1
    def dis(self):
        if self.eat("s"): self.b62()
    def ident(self):
        self.dis()
        self.eat("u")
        n = re.match(r"\d+", self.s[self.i:]).group(0); self.i += len(n)
        self.eat("_")
        r = self.s[self.i:self.i + int(n)]; self.i += int(n)
        return r
    def backref(self, f):
        pos = self.b62() + 2  # offsets count from after "_R"
        save = self.i; self.i = pos
        r = f(); self.i = save
        return r
    def path(self):
        c = self.s[self.i]; self.i += 1
        if c == "C":
            return self.ident()
        if c == "N":
            ns = self.s[self.i]; self.i += 1
            p = self.path(); nm = self.ident()
            if ns.isupper():  # closure / shim
                return "%s::{%s}" % (p, {"C": "closure", "S": "shim"}.get(ns, ns))
            return p + "::" + nm
        if c == "M":
            self.dis(); self.path(); return "<" + self.type() + ">"
        if c == "X":
            self.dis(); self.path(); t = self.type(); tr = self.path()
            return "<%s as %s>" % (t, tr)
        if c == "Y":
            t = self.type(); tr = self.path(); return "<%s as %s>" % (t, tr)
        if c == "I":
            p = self.path(); args = []
            while not self.eat("E"):
                args.append(self.genarg())
            return "%s<%s>" % (p, ", ".join(args))
        if c == "B":
            return self.backref(self.path)
        raise ValueError("path " + c)
    def genarg(self):
        if self.eat("L"):
            self.b62(); return "'_"
        if self.eat("K"):
            return self.const()
        return self.type()
    def const(self):
        if self.eat("B"):
            return self.backref(self.const)
        if self.eat("p"):
            return "_"
        t = self.type()
        neg = self.eat("n")
        j = self.s.index("_", self.i); h = self.s[self.i:j]; self.i = j + 1
        v = int(h, 16) if h else 0
        return str(-v if neg else v) if t not in ("bool", "char") else (str(bool(v)).lower() if t == "bool" else repr(chr(v)))
    def type(self):
        c = self.peek()
        if c in BASIC:
            self.i += 1; return BASIC[c]
        self.i += 1
        if c in "RQ":
            if self.eat("L"): self.b62()
            return ("&" if c == "R" else "&mut ") + self.type()
        if c in "PO":
            return ("*const " if c == "P" else "*mut ") + self.type()
        if c == "S":
            return "[" + self.type() + "]"
        if c == "A":
            t = self.type(); return "[%s; %s]" % (t, self.const())
        if c == "T":
            ts = []
            while not self.eat("E"): ts.append(self.type())
            return "(" + ", ".join(ts) + ")"
        if c == "B":
            return self.backref(self.type)
        if c == "F":
            if self.eat("G"): self.b62()
            self.eat("U")
            if self.eat("K"):
                if not self.eat("C"): self.ident()
            ts = []
            while not self.eat("E"): ts.append(self.type())
            return "fn(%s) -> %s" % (", ".join(ts), self.type())
        if c == "D":
            if self.eat("G"): self.b62()
            bs = []
            while not self.eat("E"):
                p = self.path()
                while self.eat("p"): self.ident(); self.type()
                bs.append(p)
            self.eat("L"); self.b62()
            return "dyn " + " + ".join(bs)
        self.i -= 1
        return self.path()

def demangle_v0(s):
    m = re.match(r"_?_R", s)
    if not m:
        return None
    p = V0(s[m.end():])
    try:
        while p.peek().isdigit(): p.i += 1  # encoding version
        return p.path()
    except Exception:
        # Fallback: the identifiers in order.
        ids = re.findall(r"\d+_?([A-Za-z_][A-Za-z0-9_]*)", s[m.end():])
        return "::".join(ids) if ids else None

def strip_crate_hash(s):
    return re.sub(r"\[[0-9a-f]+\]", "", s)

def shorten(path):
    """(crate, short name): the top-level path loses its crate, and paths inside <...>
    keep only their last segment (a::b::Type -> Type)."""
    segs, cur, depth = [], "", 0
    for ch in path:  # split on "::" outside angle brackets
        if ch == "<": depth += 1
        elif ch == ">": depth -= 1
        if depth == 0 and cur.endswith(":") and ch == ":":
            segs.append(cur[:-1]); cur = ""; continue
        cur += ch
    segs.append(cur)
    crate = ""
    if len(segs) > 1 and re.fullmatch(r"[a-z_][a-z0-9_]*", segs[0]):
        crate = segs.pop(0)
    elif segs and segs[0].startswith("<"):
        m = re.match(r"<&?(?:mut )?([a-z_][a-z0-9_]*)::", segs[0])
        if m: crate = m.group(1)
    name = "::".join(segs)
    name = re.sub(r"(?<=[<( &*,])(?:[a-z_][a-z0-9_]*::)+(?=[A-Za-z_])", "", name)
    name = re.sub(r"^<(?:[a-z_][a-z0-9_]*::)+", "<", name)
    return crate, name

def pretty(raw):
    d = demangle_legacy(raw) or demangle_v0(raw)
    if d is None:
        return "", raw
    return shorten(strip_crate_hash(d))

# --- report -----------------------------------------------------------------------------
def crate_key(feat):
    return feat.replace("-", "_")

def report(feat, kind):
    d = os.path.join(out, feat)
    wasm = os.path.join(d, "opt.wasm" if kind == "opt" else "raw.wasm")
    code_bytes, payload, bodies, names, imports, module_len = parse(wasm)
    sections = SECTIONS
    if kind == "opt":
        # Names from wasm-opt's --print of the same module: imports, then functions,
        # in index order.
        wat_names = []
        for line in open(os.path.join(d, "opt.wat"), encoding="utf-8", errors="replace"):
            m = re.match(r' \(import "[^"]*" "[^"]*" \(func \$(\S+)', line) or re.match(r" \(func \$(\S+)", line)
            if m:
                wat_names.append(m.group(1))
        if len(wat_names) != imports + len(bodies):
            fail("%s: wasm-opt --print lists %d functions, the module has %d"
                 % (feat, len(wat_names), imports + len(bodies)))
        names = dict(enumerate(wat_names))
    bump_file = os.path.join(out, "bump", "opt.wasm" if kind == "opt" else "raw.wasm")
    bump_code, _, _, _, _, bump_len = parse(bump_file)
    if kind != "opt":
        bump_len = None  # the raw bump module keeps its name section: no fair subtraction
    rows = []
    own = crate_key(feat)
    groups = {"allocator": 0, "core/alloc": 0, "probe": 0, "other": 0}
    for idx, sz in bodies:
        rawname = names.get(idx, "func[%d]" % idx)
        crate, nm = pretty(rawname)
        if rawname.startswith("probe_"):
            g = "probe"
        elif crate == own or own in nm.split("<")[0] or ("<" + own) in rawname or own in crate:
            g = "allocator"
        elif crate in ("core", "alloc", "compiler_builtins", "std", "__rustc") or rawname.startswith("__rust"):
            g = "core/alloc"
        elif crate == "size_probe":
            g = "probe"
        else:
            g = "other"
        groups[g] += sz
        rows.append((sz, idx, crate, nm, g))
    rows.sort(key=lambda r: (-r[0], r[1]))
    title = "-Oz" if kind == "opt" else "before wasm-opt"
    print("### %s: functions by size (%s)\n" % (feat, title))
    print("| # | function | crate | bytes | group |")
    print("|--:|:---------|:------|------:|:------|")
    shown = rows if top == 0 else rows[:top]
    for n, (sz, idx, crate, nm, g) in enumerate(shown, 1):
        nm = nm.replace("|", "\\|")
        print("| %d | `%s` | %s | %d | %s |" % (n, nm, crate or "-", sz, g))
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        print("| | *%d more* | | %d | |" % (len(rest), sum(r[0] for r in rest)))
    print()
    print("| total | bytes |")
    print("|:------|------:|")
    print("| functions | %d |" % len(rows))
    print("| function bodies (sum) | %d |" % sum(r[0] for r in rows))
    print("| code section (with headers and length prefixes) | %d |" % code_bytes)
    for g in ("allocator", "core/alloc", "probe", "other"):
        if groups[g]:
            label = {"allocator": "%s's own functions" % own,
                     "core/alloc": "core/alloc functions (panics, formatting, builtins)",
                     "probe": "probe exports (GlobalAlloc methods inlined into them)",
                     "other": "other crates"}[g]
            print("| %s | %d |" % (label, groups[g]))
    print("| code section minus bump's | %d |" % (code_bytes - bump_code))
    print("| other sections: %s | %d |" % (", ".join("%s %d" % x for x in sections if x[0] != "code"),
                                          sum(x[1] for x in sections if x[0] != "code")))
    if kind == "opt":
        print("| module after -Oz (as compare.rs) | %d |" % module_len)
        print("| module after -Oz minus bump (compare.rs's number) | %d |" % (module_len - bump_len))
    print()

for feat in allocs:
    report(feat, "opt")
    if raw:
        report(feat, "raw")
PY
