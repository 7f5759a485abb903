#!/usr/bin/env python3
"""Count a kernel's SASS instructions in an sm_90 cubin, and those of its inner k-step.

No cuobjdump or nvdisasm is needed: the cubin is an ELF file whose section
.text.<kernel> holds the kernel's machine code, 16 bytes an instruction on
sm_70 and newer. An instruction is named by its opcode, the low 12 bits of the
word (the table OPCODES below: the ones the GEMM-like kernels use; others are
printed as hex). The inner k-step ends at the first backward BRA after the staging
loop's last BAR (fill, BAR, compute; with double_buffer one BAR a step,
then the next tiles' fill) and starts after that BAR, or at the branch's
target when that is later (an inner k loop after the fill).
With --terms (terms per counted step: thread_m * thread_n * block_k for a
tiled reduction) it prints SASS per term. With --op the terms are counted
in the step as the instructions that every term has once (--term-op: SHF for
shift_linear, FFMA for linear), or else thread_m * thread_n * (--ks, or 1
when the step is an inner loop of its own, else block_k).

Input: a cubin, a PTX file (assembled with ptxas -arch=ARCH first), or an op
compiled by mfx (--op, --dims, --config: `mfx compile OP --target cuda:sm_80
--emit ptx`, then ptxas). thread_m, thread_n and block_k are read from --config,
defaulting to 8, 4 and 16 (the GPU defaults of linear and shift_linear).

Examples:
  bench/sass_count.py --op shift_linear --dims 784,128,1024
  bench/sass_count.py --op shift_linear --dims 784,128,1024 --config '{"form":2}' -v
  bench/sass_count.py kernel.cubin --kernel Y_kernel0 --terms 512
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

# Opcodes by their low 9 bits. Below 0x100 (the ALU) bits 9..11 say where
# the second source operand comes from: 1 a register (no suffix: 0x219), 4 an
# immediate (.i: 0x819), 5 the constant bank (.c), 6 a uniform register (.u);
# SHF (0x219) is SHF.R.S32 / SHF.L with a register shift, SHF.i with a
# constant one (a decode step), and so on. Memory and control opcodes are
# named whatever their high bits.
OPCODES = {
    0x002: "MOV", 0x007: "SEL", 0x00c: "ISETP", 0x010: "IADD3", 0x011: "LEA",
    0x012: "LOP3", 0x016: "PRMT", 0x019: "SHF", 0x01a: "SGXT", 0x01c: "PLOP3",
    0x021: "FADD", 0x023: "FFMA", 0x024: "IMAD", 0x025: "IMAD.WIDE", 0x027: "IMAD.HI",
    0x082: "UMOV", 0x08c: "UISETP", 0x090: "UIADD3", 0x092: "ULOP3", 0x099: "USHF",
    0x005: "CS2R", 0x091: "ULEA", 0x0a4: "UIMAD", 0x0a5: "UIMAD.WIDE", 0x0b9: "ULDC",
    0x0ca: "MOV.64",
    0x118: "NOP", 0x119: "S2R", 0x11a: "DEPBAR", 0x11d: "BAR", 0x141: "BSYNC", 0x145: "BSSY",
    0x147: "BRA", 0x14d: "EXIT",
    0x181: "LDG", 0x182: "LDC", 0x184: "LDS", 0x186: "STG", 0x188: "STS",
    0x1ae: "LDGSTS", 0x1af: "LDGDEPBAR", 0x1c3: "S2UR",
}
FORMS = {1: "", 4: ".i", 5: ".c", 6: ".u"}

# The instructions of shift_linear's term (register operands); everything else
# in the step is loads, decode or loop.
TERM_OPS = ("SHF", "LOP3", "IADD3")

# An instruction each term has exactly once, to count the terms of a step by
# (the op's unrolling then needs no telling): shift_linear's register shift
# (the decode's shifts are SHF.i), linear's FFMA.
TERM_OP_OF = {"shift_linear": "SHF", "linear": "FFMA"}


def opname(op):
    base = OPCODES.get(op & 0x1ff)
    if base is None:
        return "0x%03x" % op
    if op & 0x1ff < 0x100:
        return base + FORMS.get(op >> 9, ".f%x" % (op >> 9))
    return base


def elf_sections(data):
    """name -> (offset, size) of an ELF64 little-endian file's sections."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit("sass_count: not a 64-bit little-endian ELF file (a cubin)")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    heads = []
    for i in range(shnum):
        name, _typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data,
                                                                  shoff + i * shentsize)
        heads.append((name, off, size))
    stroff = heads[shstrndx][1]
    out = {}
    for name, off, size in heads:
        end = data.index(b"\0", stroff + name)
        out[data[stroff + name:end].decode("ascii", "replace")] = (off, size)
    return out


def words(data, off, size):
    """The 128-bit instruction words of a .text section as integers."""
    return [int.from_bytes(data[off + i:off + i + 16], "little") for i in range(0, size, 16)]


def opcode(w):
    return w & 0xfff


def branch_offset(w):
    """A BRA's offset in instructions from the next one: the low 6 bits in
    bits 18..23 of the word, the rest signed in bits 34..81 (read off ptxas
    13.0 sm_90 cubins: the trailing self-branch is -1, loop back-edges land
    on their loop's first instruction)."""
    high = (w >> 34) & ((1 << 48) - 1)
    if high >> 47:
        high -= 1 << 48
    return high * 64 + ((w >> 18) & 0x3f)


def backward(w):
    return branch_offset(w) < 0


def k_step(ws):
    """(start, end, inner) of the inner k-step: the first backward BRA after
    the last BAR (of those followed by one before the next BAR or EXIT) and
    the words from the instruction after that BAR, or from the branch's
    target if later (an inner loop below the fill of the next tiles), up to
    and including the BRA. inner: another backward BRA (the staging loop's)
    follows, so the step is an inner loop of its own."""
    names = [opname(opcode(w)) for w in ws]
    bars = [i for i, n in enumerate(names) if n == "BAR"]
    for b in reversed(bars):
        for j in range(b + 1, len(ws)):
            if names[j] == "BAR" or names[j] == "EXIT":
                break
            if names[j] == "BRA" and backward(ws[j]):
                inner = False
                for q in range(j + 1, len(ws)):
                    if names[q] in ("BAR", "EXIT"):
                        break
                    if names[q] == "BRA" and backward(ws[q]):
                        inner = True
                        break
                start = max(b + 1, j + 1 + branch_offset(ws[j]))
                return start, j + 1, inner
    return None


def histogram(ws):
    h = {}
    for w in ws:
        h[opname(opcode(w))] = h.get(opname(opcode(w)), 0) + 1
    return h


def show(h, indent="  "):
    return "\n".join("%s%-10s %5d" % (indent, k, v)
                     for k, v in sorted(h.items(), key=lambda kv: (-kv[1], kv[0])))


def ptxas(path, ptx, arch, verbose):
    fd, cubin = tempfile.mkstemp(suffix=".cubin")
    os.close(fd)
    cmd = [path, "-arch=" + arch, "-o", cubin, ptx] + (["-v"] if verbose else [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise SystemExit("sass_count: %s failed:\n%s" % (" ".join(cmd), r.stdout))
    return cubin, r.stdout


def compile_op(args):
    fd, ptx = tempfile.mkstemp(suffix=".ptx")
    os.close(fd)
    dims = args.dims
    if "=" not in dims:
        dims = ",".join("%s=%s" % (n, v) for n, v in zip("MNK", dims.split(",")))
    cmd = [args.mfx, "compile", args.op, "--dims", dims, "--config", args.config,
           "--target", "cuda:" + args.ptx_arch, "--emit", "ptx", "-o", ptx]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise SystemExit("sass_count: %s failed:\n%s" % (" ".join(cmd), r.stdout))
    return ptx


def default_terms(config, ks):
    """thread_m * thread_n * k's per step from the config (GPU defaults 8, 4, 16)."""
    c = json.loads(config)
    if ks is None:
        ks = c.get("block_k", 16)
    return c.get("thread_m", 8) * c.get("thread_n", 4) * ks


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="\n".join(__doc__.split("\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="a cubin, or a .ptx file (assembled with ptxas)")
    p.add_argument("--kernel", help="the kernel (default: the one with the most instructions)")
    p.add_argument("--terms", type=int, help="terms per counted k-step (prints SASS per term)")
    p.add_argument("--term-op",
                   help="count the terms as the instructions of this name in the step (one per "
                   "term: SHF, a register shift, for shift_linear; FFMA for linear); with --op "
                   "the op's own by default")
    p.add_argument("--ks", type=int,
                   help="with --op: k's per counted step (default 1 when the step is an inner "
                   "loop, else block_k; give it when LLVM unrolled the inner loop)")
    p.add_argument("--arch", default="sm_90", help="ptxas -arch (default sm_90)")
    p.add_argument("--ptxas", default=os.environ.get("MFX_PTXAS", "/usr/local/cuda/bin/ptxas"),
                   help="ptxas to use (default $MFX_PTXAS or /usr/local/cuda/bin/ptxas)")
    p.add_argument("--op", help="compile this op with mfx instead of reading a file")
    p.add_argument("--dims", help="with --op: M,N,K or M=..,N=..,K=..")
    p.add_argument("--config", default="{}", help="with --op: knob values as JSON")
    p.add_argument("--mfx", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "build", "bin", "mfx"),
                   help="the mfx tool (default build/bin/mfx next to bench/)")
    p.add_argument("--ptx-arch", default="sm_80", help="with --op: the PTX target (sm_80)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the whole kernel's and the step's histograms, ptxas -v")
    p.add_argument("--list", action="store_true", help="list the kernels and their sizes")
    args = p.parse_args()

    tmp = []
    path = args.file
    if args.op:
        if not args.dims:
            p.error("--op needs --dims")
        path = compile_op(args)
        tmp.append(path)
    elif path is None:
        p.error("give a cubin or PTX file, or --op and --dims")
    log = ""
    if path.endswith(".ptx"):
        cubin, log = ptxas(args.ptxas, path, args.arch, True)
        tmp.append(cubin)
        path = cubin
    with open(path, "rb") as f:
        data = f.read()
    for t in tmp:
        os.unlink(t)
    texts = {n[len(".text."):]: v for n, v in elf_sections(data).items()
             if n.startswith(".text.")}
    if not texts:
        raise SystemExit("sass_count: no .text.<kernel> section in %s" % path)
    if args.list:
        for n, (_, size) in sorted(texts.items()):
            print("%-40s %6d instructions" % (n, size // 16))
        return 0
    name = args.kernel or max(texts, key=lambda n: texts[n][1])
    if name not in texts:
        raise SystemExit("sass_count: no kernel %s; there are: %s" % (name, ", ".join(texts)))
    ws = words(data, *texts[name])
    if args.verbose:
        if log:
            print(log.strip())
        print("kernel %s: %d instructions" % (name, len(ws)))
        print(show(histogram(ws)))
    step = k_step(ws)
    if step is None:
        print("kernel %s: %d instructions, no loop with a BAR (no staged k-step)"
              % (name, len(ws)))
        return 1
    s = ws[step[0]:step[1]]
    h = histogram(s)
    term = sum(h.get(k, 0) for k in TERM_OPS)
    if args.term_op is None and args.op and args.ks is None:
        args.term_op = TERM_OP_OF.get(args.op)
    if args.terms is None and args.term_op:
        args.terms = h.get(args.term_op, 0)
        if args.terms == 0:
            raise SystemExit("sass_count: no %s in the k-step to count terms by" % args.term_op)
    if args.ks is None and step[2]:
        args.ks = 1
    if args.op and args.terms is None:
        args.terms = default_terms(args.config, args.ks)
    print("kernel %s: %d instructions; k-step words %d..%d: %d instructions (%s)"
          % (name, len(ws), step[0], step[1] - 1, len(s),
             "an inner loop" if step[2] else "the staging loop's body"))
    print(show(h))
    if args.terms:
        print("terms per step %d: %.3f SASS per term (%s: %.3f, other %.3f)"
              % (args.terms, len(s) / args.terms, "+".join(TERM_OPS), term / args.terms,
                 (len(s) - term) / args.terms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
