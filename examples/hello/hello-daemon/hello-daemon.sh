#!/bin/sh
# hello-daemon: GET /hello answers "Hello, DTaaS!" on port 8080.
#
# Every start appends a line to /data/starts. /data is the prototype's volume
# (MANIFEST.json: volume_location), so the file keeps growing across restarts
# of the daemon; GET /starts shows it.
data=/data
stamp="$(date -u +%Y-%m-%dT%H:%M:%SZ) instance=${DTAAS_INSTANCE_ID:-unknown}"
if mkdir -p "$data" 2>/dev/null && echo "$stamp" >>"$data/starts" 2>/dev/null; then
    echo "hello-daemon: start #$(wc -l <"$data/starts") recorded in $data/starts"
else
    echo "hello-daemon: warning: cannot write $data/starts, serving anyway" >&2
fi

# Foreground, so the container lives as long as the server; -v logs requests.
exec httpd -f -v -p 8080 -h /www
