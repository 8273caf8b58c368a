#!/usr/bin/env python3
"""Validate contracts against Pactum's JSON Schema with an independent validator.

The Rust decoder is the authority on contracts; this keeps the schema that editors use honest:
every contract the project ships must validate against it.
Usage: check_schema.py SCHEMA CONTRACT_OR_DIR...
"""
import json
import pathlib
import sys

import jsonschema
import yaml


def contracts(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(p.rglob("*.yaml"))
        else:
            yield p


def main():
    schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failed = 0
    files = list(contracts(sys.argv[2:]))
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            failed += 1
            print(f"{path}: not portable YAML (PyYAML, YAML 1.1): {e}")
            continue
        for err in validator.iter_errors(doc):
            failed += 1
            where = "/".join(str(p) for p in err.absolute_path)
            print(f"{path}: /{where}: {err.message}")
    print(f"schema check: {len(files)} contract(s), {failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
