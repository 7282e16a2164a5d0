#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Where does the emulated igb deliver untagged frames for a MAC that a VF
# holds: to the VF, to the PF, or both? (docs/migration.md, "Measured:
# bench/migrate.sh"). A diagnostic, run in the lab, no guests:
#
#   lab/iovm-lab run -- bench/vf-mac-steering.sh
#
# VF 0 of eth1 (igbvf, netns srv) pings 10.9.0.11 at MAC 02:99:00:00:00:11
# every 50 ms. That MAC is in eth0's own filter (`bridge fdb ... self`, as a
# macvtap standby or bench/migrate.sh's bridge puts it), and VF 0 of eth0 is
# given it: without a driver (A-F), with or without a port VLAN, then bound
# to igbvf (G-I). Each case prints the frames eth0 (the PF) and, from G on,
# eth0's VF received in 5 s.
set -u
modprobe igbvf
for pf in eth0 eth1; do echo 0 > /sys/class/net/$pf/device/sriov_numvfs; ip link set $pf up; done
sleep 3
M=02:99:00:00:00:11
echo 0 > /sys/class/net/eth1/device/sriov_drivers_autoprobe
echo 1 > /sys/class/net/eth1/device/sriov_numvfs
ip link set eth1 vf 0 mac 02:99:00:00:00:01
v1=$(basename "$(readlink /sys/class/net/eth1/device/virtfn0)")
echo igbvf > /sys/bus/pci/devices/$v1/driver_override
echo $v1 > /sys/bus/pci/drivers/igbvf/bind
for i in $(seq 60); do ls /sys/bus/pci/devices/$v1/net >/dev/null 2>&1 && break; sleep 1; done
nd=$(ls /sys/bus/pci/devices/$v1/net)
ip netns add srv; ip link set "$nd" netns srv
ip -n srv addr add 10.9.0.1/24 dev "$nd"; ip -n srv link set "$nd" up
for i in $(seq 90); do [ "$(ip netns exec srv cat /sys/class/net/$nd/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
echo "peer $nd carrier $(ip netns exec srv cat /sys/class/net/$nd/carrier)"
ip -n srv neigh replace 10.9.0.11 lladdr $M dev "$nd" nud permanent
echo 0 > /sys/class/net/eth0/device/sriov_drivers_autoprobe
echo 1 > /sys/class/net/eth0/device/sriov_numvfs
bridge fdb replace $M dev eth0 self permanent
ip netns exec srv ping -q -i 0.05 10.9.0.11 > /dev/null 2>&1 &
P=$!
count() {
	local a b
	a=$(cat /sys/class/net/eth0/statistics/rx_packets); sleep 5; b=$(cat /sys/class/net/eth0/statistics/rx_packets)
	echo "$1: PF eth0 received $((b - a)) frames in 5 s (ping sends ~100); $(ip link show eth0 | grep 'vf 0' | sed 's/^ *//')"
}
count "A. VF 0 without MAC"
ip link set eth0 vf 0 mac $M; sleep 1
count "B. VF 0 with the MAC, no VLAN"
ip link set eth0 vf 0 vlan 4000; sleep 1
count "C. VF 0 with the MAC and port VLAN 4000"
ip link set eth0 vf 0 vlan 0; sleep 1
count "D. port VLAN lifted"
ip link set eth0 vf 0 vlan 4000; sleep 1
count "E. port VLAN again"
ip link set eth0 vf 0 mac 00:00:00:00:00:00; ip link set eth0 vf 0 vlan 0; sleep 1
count "F. MAC cleared, no VLAN"
ip link set eth0 vf 0 mac $M
v0=$(basename "$(readlink /sys/class/net/eth0/device/virtfn0)")
echo igbvf > /sys/bus/pci/devices/$v0/driver_override
echo $v0 > /sys/bus/pci/drivers/igbvf/bind
for i in $(seq 60); do ls /sys/bus/pci/devices/$v0/net >/dev/null 2>&1 && break; sleep 1; done
n0=$(ls /sys/bus/pci/devices/$v0/net); ip link set "$n0" up
for i in $(seq 90); do [ "$(cat /sys/class/net/$n0/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
echo "VF 0 on igbvf as $n0, MAC $(cat /sys/class/net/$n0/address), carrier $(cat /sys/class/net/$n0/carrier)"
a=$(cat /sys/class/net/$n0/statistics/rx_packets)
count "G. VF 0 with the MAC, its driver up"
echo "   VF 0 ($n0) received $(( $(cat /sys/class/net/$n0/statistics/rx_packets) - a )) frames meanwhile"
ip link set eth0 vf 0 vlan 4000; sleep 1
a=$(cat /sys/class/net/$n0/statistics/rx_packets)
count "H. VF 0 with the MAC, its driver up, port VLAN 4000"
echo "   VF 0 ($n0) received $(( $(cat /sys/class/net/$n0/statistics/rx_packets) - a )) frames meanwhile"
bridge fdb del $M dev eth0 self; ip link set eth0 vf 0 vlan 0; sleep 1
a=$(cat /sys/class/net/$n0/statistics/rx_packets)
count "I. the MAC not in the PF's own filter, VF 0's driver up"
echo "   VF 0 ($n0) received $(( $(cat /sys/class/net/$n0/statistics/rx_packets) - a )) frames meanwhile"
kill $P
