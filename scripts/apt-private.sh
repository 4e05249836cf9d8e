#!/bin/bash
# Private apt configuration for fetching Debian packages without touching
# the system's apt sources.  The archive URI is taken from the system's own
# configuration so that the repository names no registry host.
#
# Usage: scripts/apt-private.sh DIR apt-get-args...
#   DIR holds the configuration, lists and cache; it is created on demand.
set -euo pipefail

dir=$1
shift
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/parts"

archive_uri() {
    local uri
    uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources \
              2>/dev/null | tr ' ' '\n' | grep -v -- '-security' |
          grep '/debian/\?$' | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' \
                  /etc/apt/sources.list 2>/dev/null || true)
    fi
    if [ -z "$uri" ]; then
        echo "apt-private: no Debian archive URI in the system's apt sources" >&2
        exit 1
    fi
    echo "$uri"
}

if [ ! -f "$dir/sources.list" ]; then
    uri=$(archive_uri)
    cat > "$dir/sources.list" <<LIST
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm-backports main
LIST
fi
# Written aside and renamed: lab jobs that run at once (tests/lab/test_lab.sh)
# may each call this while another's apt-get reads the file.
cat > "$dir/apt.conf.$$" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/parts";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
Dir::State::status "/var/lib/dpkg/status";
APT::Sandbox::User "root";
APT::Architecture "amd64";
Acquire::Languages "none";
CONF
mv -f "$dir/apt.conf.$$" "$dir/apt.conf"

stamp="$dir/lists/.updated"
if [ ! -f "$stamp" ] || [ "$dir/sources.list" -nt "$stamp" ]; then
    apt-get -c "$dir/apt.conf" -q update >&2
    touch "$stamp"
fi
exec apt-get -c "$dir/apt.conf" "$@"
