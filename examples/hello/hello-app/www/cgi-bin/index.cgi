#!/bin/sh
# GET / : "The Daemon says, <whatever the daemon's /hello answers>".
#
# On every request: read the daemon's instance id from the config
# ({"daemon-id": "<instance id>"}), ask the DTaaS API for that instance's
# address (the app holds READ on it, see MANIFEST.json config-capabilities),
# then ask the daemon itself.

# CGI children of some busybox httpd builds get no environment: fall back
# to the copy hello-app.sh saved.
if [ -z "${DTAAS_API_URL-}" ] && [ -r /tmp/hello-app.env ]; then
    . /tmp/hello-app.env
fi

# busybox httpd sends "200 OK" unless the output starts with a status line
# ("Status:" headers are not translated), so errors write their own.
fail() {
    printf 'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
    printf 'hello-app: %s\n' "$*"
    exit 0
}

[ -n "${DTAAS_API_URL-}" ] || fail "DTAAS_API_URL is not set"
config=${DTAAS_CONFIG_FILE:-/run/dtaas/config.json}
key_file=${DTAAS_API_KEY_FILE:-/run/secrets/dtaas/api-key}

daemon_id=$(sed -n 's/.*"daemon-id"[[:space:]]*:[[:space:]]*"\([0-9a-f]*\)".*/\1/p' "$config" 2>/dev/null | head -n 1)
[ -n "$daemon_id" ] || fail "no \"daemon-id\" in $config"

key=$(cat "$key_file" 2>/dev/null) || fail "cannot read the API key file $key_file"

instance=$(wget -q -O - --header "Authorization: Bearer $key" \
    "$DTAAS_API_URL/instances/$daemon_id" 2>&1) \
    || fail "GET $DTAAS_API_URL/instances/$daemon_id: $instance"

ip=$(printf '%s\n' "$instance" \
    | sed -n 's/.*"ipv4_address"[[:space:]]*:[[:space:]]*"\([0-9.]*\)".*/\1/p' | head -n 1)
[ -n "$ip" ] || fail "daemon instance $daemon_id has no ipv4_address (is it running?)"

greeting=$(wget -q -O - "http://$ip:8080/hello" 2>&1) \
    || fail "GET http://$ip:8080/hello: $greeting"

printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'The Daemon says, %s' "$greeting"
