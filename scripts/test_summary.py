#!/usr/bin/env python3
"""Sums every test case of every build into one line: 'N passed, N failed'.

Each test binary prints 'tt: N passed, N failed' (tests/tt.h); a test that
printed no such line (a script, or a binary that crashed) counts as one case
by its meson result. Skipped tests (exit 77) are counted apart.
"""
import json
import re
import sys

TT = re.compile(r"^tt: (\d+) passed, (\d+) failed$", re.M)


def tally(build_dir):
    passed = failed = skipped = 0
    failures = []
    with open(f"{build_dir}/meson-logs/testlog.json", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            res = rec.get("result")
            name = rec.get("name")
            if res == "SKIP":
                skipped += 1
                continue
            found = TT.findall(rec.get("stdout") or "")
            if found and res in ("OK", "FAIL", "EXPECTEDFAIL"):
                p = sum(int(a) for a, _ in found)
                q = sum(int(b) for _, b in found)
                if res == "FAIL" and q == 0:
                    q = 1  # exited non-zero after printing a clean tally
                passed += p
                failed += q
            elif res == "OK":
                passed += 1
            else:
                failed += 1
            if res != "OK":
                failures.append(f"{build_dir}: {name} ({res})")
    return passed, failed, skipped, failures


def main():
    tp = tf = ts = 0
    for d in sys.argv[1:]:
        p, f, s, fails = tally(d)
        print(f"{d}: {p} passed, {f} failed, {s} skipped")
        for x in fails:
            print(f"  failed: {x}")
        tp, tf, ts = tp + p, tf + f, ts + s
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
