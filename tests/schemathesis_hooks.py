"""Schemathesis hooks for the fuzz test (tests/integration/fuzz.rs, which loads this file through
SCHEMATHESIS_HOOKS).

Files sent as `multipart/form-data` (a build's or a job's `attachments`) are named by their file
names, which must be unique: the appliance refuses two attachments of one name (400) rather
than keep one of them. File names are not part of the values JSON Schema describes, and
schemathesis names every file of a field after the field, so two files of one field are always
named alike: a form generated as valid keeps one file per field, so that the check that valid
data is accepted holds on those operations too. Invalid forms are left as they are.

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
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    if case.media_type == "multipart/form-data":
        return one_file_per_field(case)
    operation = case.operation
    if operation.method.upper() != "POST" or operation.path != "/v1/prototypes":
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


def one_file_per_field(case):
    """A valid form with at most one file per field (see the module's documentation)."""
    attachments = case.body.get("attachments")
    if isinstance(attachments, list) and len(attachments) > 1:
        case.body = {**case.body, "attachments": attachments[:1]}
    return case
