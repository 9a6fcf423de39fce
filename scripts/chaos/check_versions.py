#!/usr/bin/env python3
"""Checks every version under feature prefixes kept as folders (a local prefix, or an S3
prefix as the test S3 server stores it: one file per object).

    check_versions.py PREFIX_DIR [PREFIX_DIR ...]
    prints "complete=N incomplete=N mismatched=N" and, for each mismatch, what is wrong;
    exit 1 if any version with a _SUCCESS does not match its files.

A version "matches" when its _SUCCESS parses as the manifest, names this version, and
every file it lists exists with the listed size and sha256.
"""
import hashlib
import json
import os
import sys


def check(version_dir):
    """None when the version has no _SUCCESS, else a list of problems (empty: whole)."""
    marker = os.path.join(version_dir, "_SUCCESS")
    if not os.path.isfile(marker):
        return None
    try:
        with open(marker, "rb") as f:
            manifest = json.load(f)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"_SUCCESS is not a manifest: {e}"]
    problems = []
    if manifest.get("feature_version") != os.path.basename(version_dir):
        problems.append(f"_SUCCESS names {manifest.get('feature_version')!r}")
    for name, listed in files.items():
        path = os.path.join(version_dir, name)
        if not os.path.isfile(path):
            problems.append(f"{name} is missing")
            continue
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != listed.get("size_bytes"):
            problems.append(f"{name} is {len(data)} bytes, _SUCCESS lists {listed.get('size_bytes')}")
        elif hashlib.sha256(data).hexdigest() != listed.get("sha256"):
            problems.append(f"{name} is not the file _SUCCESS describes (sha256 differs)")
    return problems


def main():
    complete = incomplete = mismatched = 0
    for prefix in sys.argv[1:]:
        if not os.path.isdir(prefix):
            continue
        for name in sorted(os.listdir(prefix)):
            if not name.startswith("v_"):
                continue
            problems = check(os.path.join(prefix, name))
            if problems is None:
                incomplete += 1
            elif problems:
                mismatched += 1
                print(f"MISMATCH {os.path.join(prefix, name)}: {'; '.join(problems)}")
            else:
                complete += 1
    print(f"complete={complete} incomplete={incomplete} mismatched={mismatched}")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
