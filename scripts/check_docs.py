#!/usr/bin/env python3
"""Runs the shell blocks of the README and docs/ that are marked runnable, so that every
command they show keeps working.

    scripts/check_docs.py --bin DIR [FILE.md ...]     (default: README.md docs/*.md)

A block is runnable when its fence reads ```sh runnable (optionally `exit=N` when the
command is expected to end with that code, e.g. a documented failure). Each block runs
with bash -eo pipefail in a fresh copy of the repository's fixtures, deploy and scripts
folders (so it can write `out/` freely), with DIR (where the `featurepipe` binary is)
first on PATH. Prints one line per block; exit 1 if any block fails.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```sh runnable(?:\s+exit=(\d+))?\s*$")


def blocks(path):
    """(line number, expected exit code, script) of every runnable block in `path`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        yield start, int(m.group(1) or 0), "\n".join(body) + "\n"
        i += 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True, help="folder holding the featurepipe binary")
    p.add_argument("files", nargs="*")
    args = p.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = args.files or [os.path.join(repo, "README.md")] + sorted(
        glob.glob(os.path.join(repo, "docs", "*.md"))
    )
    env = dict(os.environ)
    env["PATH"] = os.path.abspath(args.bin) + os.pathsep + env.get("PATH", "")
    for k in list(env):
        if k.startswith("DP_"):
            del env[k]
    failed = ran = 0
    for path in files:
        for line, expected, script in blocks(path):
            ran += 1
            with tempfile.TemporaryDirectory(prefix="featurepipe-docs-") as work:
                for folder in ("fixtures", "deploy", "scripts"):
                    shutil.copytree(os.path.join(repo, folder), os.path.join(work, folder))
                done = subprocess.run(
                    ["bash", "-eo", "pipefail", "-c", script],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            where = f"{os.path.relpath(path, repo)}:{line}"
            if done.returncode == expected:
                print(f"ok    {where}")
            else:
                failed += 1
                print(f"FAIL  {where}: exit {done.returncode}, expected {expected}")
                print("      " + "\n      ".join(script.strip().splitlines()))
                tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
                print("      | " + "\n      | ".join(tail))
    print(f"{ran} runnable blocks, {failed} failed")
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
