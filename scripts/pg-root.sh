# Sourced by scripts/pgvector-server.sh and scripts/cluster.sh: the Debian 13 root with PostgreSQL
# 17 and pgvector (Debian 12 has no pgvector package), built once with debootstrap under
# $PATCHVEC_PG_CACHE (/var/cache/patchvec), and running commands in it as the postgres user.
# The sourcing script defines say().
# shellcheck shell=bash

cache=${PATCHVEC_PG_CACHE:-/var/cache/patchvec}
root=$cache/trixie-postgres17
bin=/usr/lib/postgresql/17/bin
mirror=${PATCHVEC_DEBIAN_MIRROR:-http://deb.debian.org/debian}

in_root() {  # runs a command inside the root as the postgres user
  chroot --userspec=postgres:postgres "$root" env -i PATH=/usr/bin:/bin HOME=/var/lib/postgresql \
    LANG=C.UTF-8 "$@"
}

build_root() {
  [ -e "$root/.ready" ] && return 0
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get install -y -qq debootstrap >/dev/null
  }
  local staging="$root.partial"
  rm -rf "$staging"
  mkdir -p "$cache"
  say "creating a Debian 13 root in $root (once; about two minutes)"
  timeout 900 debootstrap --variant=minbase trixie "$staging" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { say "debootstrap failed, see $cache/debootstrap.log"; exit 1; }
  # Packages must not start services, nor create a cluster of their own.
  printf '#!/bin/sh\nexit 101\n' >"$staging/usr/sbin/policy-rc.d"
  chmod +x "$staging/usr/sbin/policy-rc.d"
  mkdir -p "$staging/etc/postgresql-common"
  echo "create_main_cluster = false" >"$staging/etc/postgresql-common/createcluster.conf"
  cp /etc/resolv.conf "$staging/etc/resolv.conf" 2>/dev/null || true
  say "installing postgresql-17 and postgresql-17-pgvector in the root"
  timeout 900 chroot "$staging" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-17 postgresql-17-pgvector' \
    >"$cache/apt.log" 2>&1 || { say "apt-get in the root failed, see $cache/apt.log"; exit 1; }
  mkdir -p "$staging/var/lib/patchvec"
  chroot "$staging" chown postgres:postgres /var/lib/patchvec
  mv "$staging" "$root"
  touch "$root/.ready"
}
