#!/bin/sh
# hello-pipeline: creates and runs hello-daemon, creates and runs hello-app
# configured with the daemon's instance id, then grants the app's pending
# delegation requests (READ on that instance, asked for through the app's
# config-capabilities). Prints the ids it gets; exits non-zero on the first
# failed call.
#
# Inside DTaaS the server sets DTAAS_API_URL and DTAAS_API_KEY_FILE. Outside,
# export them yourself (DTAAS_API_URL=http://127.0.0.1:5000/v1 and a file
# holding an API key).
set -eu

: "${DTAAS_API_URL:?is not set}"
key_file=${DTAAS_API_KEY_FILE:-/run/secrets/dtaas/api-key}
key=$(cat "$key_file")
resources='{"cpu_cores":1,"ram":64,"disk":0,"gpu_count":0,"shm":0}'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() {
    echo "hello-pipeline: $*" >&2
    exit 1
}

# api METHOD PATH [JSON]: prints the response body, or dies saying which call
# failed and with what status. busybox wget cannot show the body of an error
# response; the server's log has the details.
api() {
    method=$1 path=$2 body=${3-}
    set -- -q -O "$tmp/body" --header "Authorization: Bearer $key"
    if [ "$method" = POST ]; then
        # Exactly "Content-Type:": busybox wget adds its own form type unless
        # it finds this spelling. Without a body it always sends
        # "Content-Type: application/x-www-form-urlencoded" and Content-Length: 0.
        [ -z "$body" ] || set -- "$@" --header "Content-Type: application/json"
        set -- "$@" --post-data "$body"
    fi
    rm -f "$tmp/body"
    if ! wget "$@" "$DTAAS_API_URL$path" 2>"$tmp/err"; then
        die "$method $path failed: $(cat "$tmp/err")"
    fi
    cat "$tmp/body"
}

# json_field KEY DEPTH < JSON: the string values of KEY in the objects at
# DEPTH (1: the top-level object, 2: the objects of a top-level array),
# one a line. Nested objects' keys of the same name are not matched.
json_field() {
    awk -v key="$1" -v want="$2" '
        { doc = doc $0 "\n" }
        END {
            n = length(doc); depth = 0; pending = ""; i = 1
            while (i <= n) {
                c = substr(doc, i, 1)
                if (c == "\"") {
                    s = ""; i++
                    while (i <= n) {
                        c = substr(doc, i, 1)
                        if (c == "\"") break
                        if (c == "\\") { s = s c; i++; c = substr(doc, i, 1) }
                        s = s c; i++
                    }
                    i++
                    j = i
                    while (j <= n && substr(doc, j, 1) ~ /[ \t\r\n]/) j++
                    if (substr(doc, j, 1) == ":") {
                        pending = s; i = j + 1
                    } else {
                        if (pending == key && depth == want) print s
                        pending = ""
                    }
                    continue
                }
                if (c == "{" || c == "[") depth++
                else if (c == "}" || c == "]") depth--
                if (c !~ /[ \t\r\n,]/) pending = ""
                i++
            }
        }'
}

# field JSON KEY: one top-level string field, or nothing
field() {
    printf '%s\n' "$1" | json_field "$2" 1 | head -n 1
}

# The daemon.
daemon=$(api POST /servables \
    '{"prototype":"hello-daemon:1","name":"hello-daemon","config":{},"resources":'"$resources"'}')
daemon_id=$(field "$daemon" id)
[ -n "$daemon_id" ] || die "POST /servables answered no id: $daemon"
echo "daemon servable:  $daemon_id"

daemon_run=$(api POST "/servables/$daemon_id/run")
daemon_instance=$(field "$daemon_run" id)
[ -n "$daemon_instance" ] || die "POST /servables/$daemon_id/run answered no id: $daemon_run"
echo "daemon instance:  $daemon_instance ($(field "$daemon_run" state) at $(field "$daemon_run" ipv4_address))"

# The app, told which daemon instance to ask. Creating it with this config
# makes the server open a delegation request for READ on that instance.
app=$(api POST /servables \
    '{"prototype":"hello-app:1","name":"hello-app","config":{"daemon-id":"'"$daemon_instance"'"},"resources":'"$resources"'}')
app_id=$(field "$app" id)
[ -n "$app_id" ] || die "POST /servables answered no id: $app"
echo "app servable:     $app_id"

app_run=$(api POST "/servables/$app_id/run")
app_instance=$(field "$app_run" id)
[ -n "$app_instance" ] || die "POST /servables/$app_id/run answered no id: $app_run"
echo "app instance:     $app_instance ($(field "$app_run" state))"

# Grant what the app asked for. We created the daemon, so we may grant READ
# on it; when the server granted it already, nothing is pending.
pending=$(api GET "/delegation-requests?servable=$app_id&state=pending")
granted=0
for request in $(printf '%s\n' "$pending" | json_field id 2); do
    api POST "/delegation-requests/$request/grant" >/dev/null
    echo "granted:          delegation request $request"
    granted=$((granted + 1))
done
[ "$granted" -gt 0 ] || echo "granted:          nothing pending (already granted)"

url=$(field "$app_run" url)
echo "app url:          ${url:-(none)}"
echo "hello-pipeline: done"
