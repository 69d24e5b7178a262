#!/bin/sh
# hello-app: serves /www on port 8080; GET / runs /www/cgi-bin/index.cgi.
#
# busybox httpd 1.35 (Debian) passes its environment on to CGI scripts, but
# other builds do not, so the DTAAS_* values the CGI script needs are also
# saved in a file it falls back to.
env_file=/tmp/hello-app.env
mkdir -p /tmp
umask 077
: >"$env_file.new"
for name in DTAAS_API_URL DTAAS_API_KEY_FILE DTAAS_CONFIG_FILE; do
    eval "value=\${$name-}"
    [ -n "$value" ] || echo "hello-app: warning: $name is not set" >&2
    # single-quoted for the shell that sources the file
    printf "%s='%s'\n" "$name" "$(printf '%s' "$value" | sed "s/'/'\\\\''/g")" >>"$env_file.new"
done
mv "$env_file.new" "$env_file"

exec httpd -f -v -p 8080 -h /www
