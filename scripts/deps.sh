#!/usr/bin/env bash
# Install what building, testing and the docs need on Debian 12.
# Runs fast when everything is present already.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libmbedtls-dev libssl-dev libcmocka-dev
    doxygen clang libclang-rt-14-dev valgrind clang-format
    iproute2 iputils-ping tcpdump tshark python3-scapy python3-cryptography iperf3 nftables
    liblwip-dev gcc-arm-none-eabi libnewlib-arm-none-eabi
    # bench/compare.sh: strongSwan's charon with kernel-libipsec (extra plugins)
    # and AES-GCM from OpenSSL (standard plugins), wireguard-go and wg.
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
    wireguard-go wireguard-tools
)
# intel-ipsec-mb (the third crypto backend) is packaged for x86-64 only.
if [ "$(dpkg --print-architecture 2>/dev/null || true)" = amd64 ]; then
    packages+=(libipsec-mb-dev)
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root, or install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
# tshark asks whether non-root users may capture; answer no without asking.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
# Packages start no service here: strongswan-starter (which strongswan-charon
# needs) would start charon on the host. Where no policy-rc.d says otherwise,
# one that refuses every start holds for the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update
# Without recommends: wireguard-tools would bring a kernel image.
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
