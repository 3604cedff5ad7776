#!/bin/sh
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# An address that never answers, inside a network namespace of the test's own:
#   blackhole_netns.sh create NAME   prints the address (169.254.77.2)
#   blackhole_netns.sh delete NAME
# The namespace gets one end of a veth pair and a blackhole route back to the host side, so a SYN
# reaches it but no answer (not even a RST) ever leaves it: libpq's connect_timeout must fire.
# The host side has a permanent neighbour entry, so no ARP is needed either.
set -eu
cmd=${1:?create or delete}
ns=${2:?namespace name}
host_if="cbh-h-$(printf %s "$ns" | cksum | cut -c1-6)"
ns_if="cbh-n0"
host_ip=169.254.77.1
ns_ip=169.254.77.2

case "$cmd" in
create)
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name "$ns_if" netns "$ns"
    ip addr add "$host_ip/30" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$ns" addr add "$ns_ip/30" dev "$ns_if"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$ns_if" up
    ip -n "$ns" route add blackhole "$host_ip/32"
    mac=$(ip -n "$ns" -o link show "$ns_if" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    ip neigh replace "$ns_ip" lladdr "$mac" dev "$host_if" nud permanent
    echo "$ns_ip"
    ;;
delete)
    # Deleting the namespace deletes its veth end, and with it the host end.
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$host_if" 2>/dev/null || true
    ;;
*)
    echo "usage: $0 create|delete NAME" >&2
    exit 2
    ;;
esac
