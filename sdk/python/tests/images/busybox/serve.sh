#!/bin/sh
# A servable for the SDK's tests. A pipeline prints its config and exits 0 (or with the number
# in its config's "exit" key); the other types serve "<type> <name>" on port 8080 ("/").
echo "servable $DTAAS_SERVABLE_NAME ($DTAAS_SERVABLE_TYPE) starts"
if [ "$DTAAS_SERVABLE_TYPE" = pipeline ]; then
    echo "config: $(cat "$DTAAS_CONFIG_FILE" | tr -d '\n ')"
    code=$(sed -n 's/.*"exit": *\([0-9]*\).*/\1/p' "$DTAAS_CONFIG_FILE")
    echo "pipeline done"
    exit "${code:-0}"
fi
mkdir -p /www
printf '%s %s' "$DTAAS_SERVABLE_TYPE" "$DTAAS_SERVABLE_NAME" >/www/index.html
# httpd as PID 1 would ignore SIGTERM (and a stop would wait for SIGKILL): the shell stays
# PID 1 and ends it.
httpd -f -p 8080 -h /www &
trap 'kill $!; exit 0' TERM INT
wait
