"""Schemathesis hooks for the fuzz test (tests/integration/fuzz.rs, which loads this file through
SCHEMATHESIS_HOOKS).

A project manifest (POST /v1/prototypes) has two rules that relate its values to its keys, which
JSON Schema cannot state: each entry's `name` equals its key, and the manifest's own prototypes
do not depend on each other in a cycle. The OpenAPI document states everything else. A manifest
generated as valid is made to keep these two rules as well, so that the check that valid data is
accepted (a 400 is not) holds on that operation as on every other; invalid manifests are left as
they are.
"""

import schemathesis


@schemathesis.hook
def map_case(context, case):
    operation = case.operation
    if operation.method.upper() != "POST" or operation.path != "/v1/prototypes":
        return case
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    keys = set(case.body)
    manifest = {}
    for key, entry in case.body.items():
        if isinstance(entry, dict):
            entry = dict(entry)
            if "name" in entry:
                entry["name"] = key
            dependencies = entry.get("dependencies")
            if isinstance(dependencies, dict):
                # Only references to prototypes outside the manifest: no cycle among its own.
                entry["dependencies"] = {k: v for k, v in dependencies.items() if v not in keys}
        manifest[key] = entry
    case.body = manifest
    return case
